"""The local sandbox: SQS + Secrets Manager (moto) and a GMS stand-in, on loopback.

Used by ``executor sandbox``, ``executor demo``, the tests and the benchmarks, so a
newcomer needs no AWS account and no DataHub server.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import TracebackType

from remote_executor.sandbox.aws import AwsSandbox
from remote_executor.sandbox.gms import GmsStandIn, ServedRequest

QUEUE_NAME = "remote-executor"
DEAD_LETTER_QUEUE_NAME = "remote-executor-dead-letters"


class Sandbox:
    """Both endpoints and one queue, started together.

    ``gms_latency_seconds`` is added to every GMS call, to see what a GMS across a network
    costs; ``gms.latency_seconds`` changes it while the sandbox runs.
    """

    def __init__(
        self,
        token: str | None = None,
        aws_port: int = 0,
        gms_port: int = 0,
        gms_latency_seconds: float = 0.0,
    ) -> None:
        self.token = token
        self.aws = AwsSandbox(aws_port)
        self.gms = GmsStandIn(token=token, port=gms_port, latency_seconds=gms_latency_seconds)
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

    def start_worker(
        self, tasks_dir: Path, log_path: Path, queue_url: str | None = None, **settings: str
    ) -> subprocess.Popen[bytes]:
        """``executor run --worker-id remote`` in a process of its own, on this sandbox.

        It reads ``queue_url`` (default: the sandbox's queue), keeps its tasks under
        ``tasks_dir`` and writes its output to ``log_path``; ``settings`` are more
        environment variables (``EXECUTOR_LOG_FORMAT="json"``), which win. Its health
        endpoints take a free port, so that several can run at once.
        """
        environment = {
            **os.environ,
            **self.env(),
            "EXECUTOR_QUEUE_URL": queue_url or self.queue_url,
            "EXECUTOR_WORK_DIR": str(tasks_dir),
            "EXECUTOR_HEALTH_PORT": "0",
            **settings,
        }
        with log_path.open("wb") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "remote_executor", "run", "--worker-id", "remote"],
                env=environment,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def start_bridge(
        self, log_path: Path, queues: dict[str, str], **settings: str
    ) -> subprocess.Popen[bytes]:
        """``executor bridge`` in a process of its own, forwarding to ``queues`` (executor id
        to queue URL) from this sandbox's GMS; ``settings`` are more environment variables.
        Its health endpoints take a free port; it logs JSON to ``log_path``."""
        environment = {
            **os.environ,
            **self.env(),
            "EXECUTOR_BRIDGE_QUEUES": ",".join(f"{k}={v}" for k, v in queues.items()),
            "EXECUTOR_HEALTH_PORT": "0",
            "EXECUTOR_LOG_FORMAT": "json",
            **settings,
        }
        with log_path.open("ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "remote_executor", "bridge"],
                env=environment,
                stdout=out,
                stderr=subprocess.STDOUT,
            )


__all__ = ["AwsSandbox", "GmsStandIn", "Sandbox", "ServedRequest"]
