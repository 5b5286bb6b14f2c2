"""The local sandbox: SQS + Secrets Manager (moto) and a GMS stand-in, on loopback.

Used by ``executor sandbox``, ``executor demo`` and the integration tests, so a
newcomer needs no AWS account and no DataHub server.
"""

from __future__ import annotations

from types import TracebackType

from remote_executor.sandbox.aws import AwsSandbox
from remote_executor.sandbox.gms import GmsStandIn

QUEUE_NAME = "remote-executor"
DEAD_LETTER_QUEUE_NAME = "remote-executor-dead-letters"


class Sandbox:
    """Both endpoints and one queue, started together."""

    def __init__(self, token: str | None = None, aws_port: int = 0, gms_port: int = 0) -> None:
        self.token = token
        self.aws = AwsSandbox(aws_port)
        self.gms = GmsStandIn(token=token, port=gms_port)
        self.queue_url = ""
        self.dead_letter_url = ""

    def start(self) -> Sandbox:
        """Start both servers and create the queue with its dead-letter queue."""
        self.aws.start()
        self.gms.start()
        self.dead_letter_url = self.aws.create_queue(DEAD_LETTER_QUEUE_NAME)
        self.queue_url = self.aws.create_queue(QUEUE_NAME, self.dead_letter_url)
        return self

    def stop(self) -> None:
        """Stop both servers."""
        self.gms.stop()
        self.aws.stop()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def env(self) -> dict[str, str]:
        """The environment a worker needs to use the sandbox."""
        env = {
            **self.aws.env(),
            "DATAHUB_GMS_URL": self.gms.url,
            "EXECUTOR_QUEUE_URL": self.queue_url,
        }
        if self.token:
            env["DATAHUB_GMS_TOKEN"] = self.token
        return env


__all__ = ["AwsSandbox", "GmsStandIn", "Sandbox"]
