"""What every AWS client of the executor shares: retry policy, timeouts and error wording.

Timeouts, per attempt (botocore's default is 60 s for both, so a black-holed
connection would hold a lease extension or a secret lookup for minutes):

- connect: ``CONNECT_TIMEOUT_SECONDS`` = 5 s. A TCP handshake with SQS or Secrets
  Manager (or a VPC endpoint) takes milliseconds; 5 s rides out a lost SYN.
- read, every call but the long poll (ChangeMessageVisibility(Batch), DeleteMessage,
  SendMessage, GetQueueAttributes, GetSecretValue): ``READ_TIMEOUT_SECONDS`` = 10 s.
  These answer in milliseconds; with ``MAX_ATTEMPTS`` = 5 (backoff after a timeout is
  under a second: botocore scales it from 50 ms) a hung endpoint fails a call after
  about 50 s, well inside the 200 s a default 300 s lease has left when it is extended.
- read, ReceiveMessage: ``RECEIVE_READ_TIMEOUT_SECONDS`` = 30 s, the longest long
  poll SQS allows (``WaitTimeSeconds`` <= ``LONG_POLL_MAX_SECONDS`` = 20 s) plus 10 s,
  so a poll is never cut off while SQS may still hand it a message (a message handed
  to an abandoned poll stays invisible for its whole lease). The receive makes
  ``RECEIVE_MAX_ATTEMPTS`` = 2 attempts: the worker's loop is its own retry (it polls
  again 5 s after a failed receive), and 2 x 30 s keeps a hung endpoint's failure
  inside ``/healthz``'s 90 s limit for a loop that has not gone round.

botocore takes timeouts per client, not per call, so SqsQueue keeps two clients:
one for the receive and one for everything else.
"""

from __future__ import annotations

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

CONNECT_TIMEOUT_SECONDS = 5
READ_TIMEOUT_SECONDS = 10
LONG_POLL_MAX_SECONDS = 20
RECEIVE_READ_TIMEOUT_SECONDS = LONG_POLL_MAX_SECONDS + 10
MAX_ATTEMPTS = 5
RECEIVE_MAX_ATTEMPTS = 2


def client_config(
    read_timeout_seconds: float = READ_TIMEOUT_SECONDS, max_attempts: int = MAX_ATTEMPTS
) -> Config:
    """botocore's standard retry mode with explicit connect and read timeouts.

    Standard mode retries throttling, 5xx, connection errors and read timeouts with
    jittered exponential backoff; 4xx such as AccessDenied are not retried.
    ``max_attempts`` counts the first try (botocore's ``total_max_attempts``; its
    ``max_attempts`` would count only the retries).
    """
    return Config(
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=read_timeout_seconds,
    )


# Every client but the SQS receive's.
CLIENT_CONFIG = client_config()
# The SQS receive: its read timeout outlasts the longest long poll.
RECEIVE_CONFIG = client_config(RECEIVE_READ_TIMEOUT_SECONDS, RECEIVE_MAX_ATTEMPTS)


def error_code(exc: ClientError) -> str:
    """The AWS error code, e.g. ``ReceiptHandleIsInvalid``; empty if there is none."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def describe(exc: ClientError | BotoCoreError) -> str:
    """``Code: message`` for an AWS answer, botocore's own text for anything else."""
    if not isinstance(exc, ClientError):
        return str(exc)
    error = exc.response.get("Error", {})
    return f"{error.get('Code', 'Error')}: {error.get('Message', '')}".rstrip(": ")
