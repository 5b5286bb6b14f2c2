"""Shared fakes for the unit tests: the fake datahub CLI, task contexts, a moto endpoint."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import boto3
import pytest
import yaml
from botocore.config import Config

from remote_executor.gms import MemoryReporter
from remote_executor.handoff import Handoff
from remote_executor.models import ExecutionRequest, TaskKind
from remote_executor.queue import Lease, MemoryQueue
from remote_executor.queue.base import Queue
from remote_executor.sandbox.aws import AwsSandbox
from remote_executor.secrets import MemorySecretResolver, Redactor, SecretSources
from remote_executor.task import TaskContext
from remote_executor.venvs import Environments, Installer, VenvConfig
from remote_executor.worker import Worker, WorkerConfig
from tests.polling import wait_for as poll_until

FAKE_DATAHUB = Path(__file__).parent / "fixtures" / "fake_datahub.py"
FAKE_COMMAND = (sys.executable, str(FAKE_DATAHUB))
# The fake CLI needs nothing from the worker's environment but a PATH.
CHILD_BASE_ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def _recipe_yaml(config: dict[str, Any] | None = None, **top: Any) -> str:
    return yaml.safe_dump({"source": {"type": "fake", "config": config or {}}, **top})


def _make_request(
    config: dict[str, Any] | None = None,
    request_id: str = "req-1",
    *,
    recipe: str | None = None,
    **fields: Any,
) -> ExecutionRequest:
    values: dict[str, Any] = {"task": TaskKind.RUN_INGEST, "executor_id": "remote", **fields}
    text = recipe if recipe is not None else _recipe_yaml(config)
    return ExecutionRequest(request_id=request_id, recipe=text, **values)


@pytest.fixture
def wait_for() -> Callable[..., bool]:
    """``wait_for(condition, timeout_seconds=20)``: poll until condition() is truthy.

    False if it never was within the timeout, which is generous: it bounds a hang,
    it does not measure speed.
    """
    return poll_until


@pytest.fixture
def recipe_yaml() -> Callable[..., str]:
    """``recipe_yaml(config, **top)``: a recipe whose source is the fake CLI's ``fake``."""
    return _recipe_yaml


@pytest.fixture
def make_request() -> Callable[..., ExecutionRequest]:
    """``make_request(config, request_id, recipe=..., **fields)``: a RUN_INGEST for ``remote``."""
    return _make_request


@pytest.fixture
def fake_command() -> tuple[str, ...]:
    """The argv prefix that runs the fake datahub CLI."""
    return FAKE_COMMAND


@pytest.fixture
def make_context(tmp_path: Path) -> Callable[..., TaskContext]:
    """A TaskContext running the fake CLI in tmp_path/work; keyword arguments override."""

    def make(**overrides: Any) -> TaskContext:
        values: dict[str, Any] = {
            "datahub_command": FAKE_COMMAND,
            "work_dir": tmp_path / "work",
            "base_env": dict(CHILD_BASE_ENV),
            "secrets": SecretSources([MemorySecretResolver({})]),
            "handoff": Handoff(FAKE_COMMAND),
            "redactor": Redactor(),
            "gms_url": None,
            "token": None,
            "worker_id": "test-worker",
            "kill_grace_seconds": 5.0,
        }
        values.update(overrides)
        # The fake CLI is a configured command: "native" runs it, a pinned version needs
        # an install, which unit tests refuse (tests/integration install for real).
        values.setdefault(
            "environments",
            Environments(
                VenvConfig(tmp_path / "venvs", allow_install=False),
                Installer({}, dict(CHILD_BASE_ENV), tmp_path / "uv-cache"),
                values["datahub_command"],
                None,
            ),
        )
        return TaskContext(**values)

    return make


@pytest.fixture
def markers(tmp_path: Path) -> Path:
    """Where the fake CLI leaves its start markers."""
    path = tmp_path / "markers"
    path.mkdir()
    return path


class RecordingQueue(MemoryQueue):
    """A MemoryQueue that remembers every release, with its delay."""

    def __init__(self) -> None:
        super().__init__()
        self.releases: list[tuple[str, int]] = []

    def release(self, lease: Lease, delay_seconds: int = 0) -> None:
        super().release(lease, delay_seconds)
        self.releases.append((lease.message_id, delay_seconds))


@pytest.fixture
def recording_queue() -> RecordingQueue:
    """An empty MemoryQueue that records releases."""
    return RecordingQueue()


@pytest.fixture
def unreachable_client() -> Callable[[str], Any]:
    """``unreachable_client(service)``: a boto3 client for a port nothing listens on, one try."""

    def make(service: str) -> Any:
        return cast(Any, boto3).client(
            service,
            endpoint_url="http://127.0.0.1:9",
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
            config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=2),
        )

    return make


@pytest.fixture(scope="module")
def aws_box() -> Iterator[AwsSandbox]:
    """moto's SQS and Secrets Manager on a free loopback port, once per module."""
    box = AwsSandbox().start()
    try:
        yield box
    finally:
        box.stop()


@pytest.fixture
def running(make_context: Callable[..., TaskContext]) -> Callable[..., Any]:
    """``with running(queue, reporter, secrets=None, **config) as worker``: Worker.run in a thread.

    Leaving the block stops the worker (warm stop) and joins it, so every report the
    worker will ever make has been made when the assertions run.
    """

    @contextmanager
    def run(
        queue: Queue, reporter: MemoryReporter, secrets: dict[str, str] | None = None, **config: Any
    ) -> Iterator[Worker]:
        settings: dict[str, Any] = {
            "worker_id": "remote",
            "poll_wait_seconds": 1,
            "report_interval_seconds": 0.2,
            "lease_seconds": 30,
            "shutdown_grace_seconds": 2.0,
            # These tests put messages on the queue without writing the request to the
            # reporter first; test_gms_input.py checks the worker with the check on.
            "require_gms_input": False,
            **config,
        }
        context = make_context(secrets=SecretSources([MemorySecretResolver(secrets or {})]))
        worker = Worker(queue, reporter, context, WorkerConfig(**settings))
        thread = threading.Thread(target=worker.run, name="worker-under-test", daemon=True)
        thread.start()
        try:
            yield worker
        finally:
            worker.stop()
            thread.join(timeout=60)
            assert not thread.is_alive(), "the worker did not stop"

    return run
