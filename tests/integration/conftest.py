"""Real endpoints on loopback: moto's SQS + Secrets Manager server and the GMS stand-in,
started once per session; a real worker with the real datahub CLI per test."""

from __future__ import annotations

import io
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from remote_executor.gms import GmsClient
from remote_executor.handoff import Handoff
from remote_executor.logs import configure_logging
from remote_executor.messages import build_message
from remote_executor.models import TERMINAL_STATUSES, request_urn
from remote_executor.queue.sqs import SqsQueue
from remote_executor.sandbox import Sandbox
from remote_executor.sandbox.demo import create_demo_database
from remote_executor.secrets import Redactor
from remote_executor.settings import Settings
from remote_executor.task import TaskContext
from remote_executor.wiring import datahub_command, environments, secret_sources
from remote_executor.worker import Worker, WorkerConfig

TOKEN = "integration-token-7c1e"

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    """Both endpoints, once per session; GMS requires TOKEN."""
    with Sandbox(token=TOKEN) as box:
        yield box


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's SQLite database."""
    path = tmp_path_factory.mktemp("db") / "demo.db"
    create_demo_database(path)
    return path


@dataclass
class RunningWorker:
    """A worker in a thread, with its queue, its log and its task directory."""

    sandbox: Sandbox
    queue: SqsQueue
    worker: Worker
    thread: threading.Thread
    log: io.StringIO
    work_dir: Path
    submitted: list[str] = field(default_factory=list)

    def submit(self, recipe: str, executor_id: str = "remote", **kwargs: object) -> str:
        """Send a request built exactly as `executor submit` does; its urn."""
        request_id = f"it-{uuid.uuid4().hex[:10]}"
        body = build_message(request_id, recipe, executor_id, **kwargs)  # type: ignore[arg-type]
        self.queue.send(self.sandbox.gms.write_request(body))
        self.submitted.append(request_urn(request_id))
        return request_urn(request_id)

    def wait(self, urn: str, timeout_seconds: float = 180) -> dict[str, object]:
        """The terminal result of a request; fails the test if none comes."""
        result = self.sandbox.gms.wait_for_status(urn, TERMINAL_STATUSES, timeout_seconds)
        assert result is not None, (
            f"no terminal result for {urn}; worker log:\n{self.log.getvalue()}"
        )
        return result

    def queue_is_empty(self, timeout_seconds: float = 10) -> bool:
        """True once the queue holds no message, visible or in flight."""
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            attrs = self.queue.attributes()
            if (
                attrs["ApproximateNumberOfMessages"]
                == attrs["ApproximateNumberOfMessagesNotVisible"]
                == "0"
            ):
                return True
            time.sleep(0.2)
        return False


@pytest.fixture
def start_worker(sandbox: Sandbox, tmp_path: Path) -> Iterator[callable]:  # type: ignore[valid-type]
    """Start a real worker on a fresh queue; stopped at teardown."""
    started: list[RunningWorker] = []

    def start(
        secrets: dict[str, str] | None = None,
        settings: dict[str, object] | None = None,
        environ: dict[str, str] | None = None,
        **config: object,
    ) -> RunningWorker:
        """A worker with EXECUTOR_SECRETS=``secrets``, other ``settings`` by field name,
        ``environ`` as its environment for the env source; ``config`` for WorkerConfig."""
        queue_url = sandbox.aws.create_queue(f"it-{uuid.uuid4().hex[:8]}")
        queue = SqsQueue(queue_url, sandbox.aws.client("sqs"))
        redactor = Redactor()
        redactor.add(TOKEN)
        log = io.StringIO()
        configure_logging(redactor, "json", "INFO", stream=log)
        given = {"secrets_dir": tmp_path / "no-secret-files", **(settings or {})}
        values = Settings(secrets=secrets or {}, **given)  # type: ignore[arg-type]
        command = datahub_command(values)
        context = TaskContext(
            datahub_command=command,
            work_dir=tmp_path / "tasks",
            base_env=values.child_environment(os.environ),
            secrets=secret_sources(
                values, environ or {}, client=sandbox.aws.client("secretsmanager")
            ),
            redactor=redactor,
            handoff=Handoff(command, values.secret_handoff),
            gms_url=sandbox.gms.url,
            token=TOKEN,
            environments=environments(values, command),
        )
        worker_config = WorkerConfig(
            worker_id="remote",
            poll_wait_seconds=1,
            report_interval_seconds=1.0,
            **config,  # type: ignore[arg-type]
        )
        gms = GmsClient(sandbox.gms.url, TOKEN, retry_seconds=5)
        worker = Worker(queue, gms, context, worker_config)
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        running = RunningWorker(sandbox, queue, worker, thread, log, tmp_path / "tasks")
        started.append(running)
        return running

    yield start
    for running in started:
        running.worker.stop()
        running.thread.join(timeout=60)
