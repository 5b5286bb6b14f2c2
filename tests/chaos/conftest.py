"""The chaos suite's fixtures: one sandbox for the session, a fresh queue per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from remote_executor.sandbox import Sandbox
from tests.chaos.support import ChaosQueue, WorkerProcess, start_worker, stop_worker

TOKEN = "chaos-token-41d9"

pytestmark = pytest.mark.chaos


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    """moto's SQS and Secrets Manager and the GMS stand-in (which requires TOKEN)."""
    with Sandbox(token=TOKEN) as box:
        yield box


@pytest.fixture
def queue(sandbox: Sandbox) -> ChaosQueue:
    """A fresh queue with its own dead-letter queue."""
    return ChaosQueue(sandbox)


@pytest.fixture
def markers(tmp_path: Path) -> Path:
    """Where the fake CLI leaves its start and end markers."""
    path = tmp_path / "markers"
    path.mkdir()
    return path


@pytest.fixture
def workers(
    sandbox: Sandbox, queue: ChaosQueue, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    """``workers(**env)`` starts an ``executor run`` process; all are stopped afterwards."""
    started: list[WorkerProcess] = []

    def start(**env: str) -> WorkerProcess:
        worker = start_worker(sandbox, queue, tmp_path / "workers", **env)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        stop_worker(worker)
