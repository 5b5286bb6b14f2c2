"""What every AWS client of the executor shares: retry policy and error wording."""

from __future__ import annotations

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

# botocore's standard mode retries throttling, 5xx and connection errors with
# jittered exponential backoff; 4xx such as AccessDenied are not retried.
RETRY_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5})


def error_code(exc: ClientError) -> str:
    """The AWS error code, e.g. ``ReceiptHandleIsInvalid``; empty if there is none."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def describe(exc: ClientError | BotoCoreError) -> str:
    """``Code: message`` for an AWS answer, botocore's own text for anything else."""
    if not isinstance(exc, ClientError):
        return str(exc)
    error = exc.response.get("Error", {})
    return f"{error.get('Code', 'Error')}: {error.get('Message', '')}".rstrip(": ")
