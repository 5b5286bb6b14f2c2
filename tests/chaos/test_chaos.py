"""Break real workers on purpose and check that no task is lost, doubled or left running.

Each scenario records a row (tasks, lost, doubled, processes left, time to
recover) for the table printed at the end of the session.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path

from remote_executor.sandbox import Sandbox
from tests.chaos.support import (
    ChaosQueue,
    WorkerProcess,
    processes_left,
    record,
    runs,
    terminal_statuses,
    wait_until,
)

Workers = Callable[..., WorkerProcess]


def lost_and_doubled(sandbox: Sandbox, urns: list[str], markers: Path) -> tuple[int, int]:
    """Requests without a terminal status; requests with two terminal statuses or two ends."""
    lost = sum(1 for urn in urns if not terminal_statuses(sandbox, urn))
    doubled = sum(1 for urn in urns if len(terminal_statuses(sandbox, urn)) > 1)
    doubled += sum(1 for _, ends in runs(markers).values() if ends > 1)
    return lost, doubled


def test_kill_9_while_tasks_run_then_a_second_worker_takes_over(
    sandbox: Sandbox, queue: ChaosQueue, workers: Workers, markers: Path
) -> None:
    tasks = 6
    config = {"marker_dir": str(markers), "sleep_seconds": 4}
    urns = [queue.submit(f"kill9-{n}", config) for n in range(tasks)]
    first = workers(EXECUTOR_LEASE_SECONDS="4", EXECUTOR_MAX_CONCURRENT_TASKS=str(tasks))
    assert wait_until(lambda: len(runs(markers)) == tasks), first.log()

    first.signal(signal.SIGKILL)
    first.proc.wait()
    killed_at = time.monotonic()
    assert wait_until(lambda: processes_left(markers) == 0, 10), "children outlived the worker"
    workers(EXECUTOR_LEASE_SECONDS="4", EXECUTOR_MAX_CONCURRENT_TASKS=str(tasks))
    assert wait_until(lambda: all(terminal_statuses(sandbox, urn) for urn in urns))
    recovered = time.monotonic() - killed_at

    lost, doubled = lost_and_doubled(sandbox, urns, markers)
    assert [terminal_statuses(sandbox, urn) for urn in urns] == [["SUCCESS"]] * tasks
    assert all(ends == 1 for _, ends in runs(markers).values())
    assert wait_until(queue.is_empty, 30)
    left = processes_left(markers)
    assert (lost, doubled, left) == (0, 0, 0)
    record("kill -9 the worker mid-run", tasks, lost, doubled, left, recovered)


def test_sigterm_releases_unstarted_messages_and_lets_running_tasks_finish(
    sandbox: Sandbox, queue: ChaosQueue, workers: Workers, markers: Path
) -> None:
    running = [
        queue.submit(f"drain-{n}", {"marker_dir": str(markers), "sleep_seconds": 3})
        for n in range(2)
    ]
    worker = workers(EXECUTOR_MAX_CONCURRENT_TASKS="4", EXECUTOR_SHUTDOWN_GRACE_SECONDS="60")
    assert wait_until(lambda: len(runs(markers)) == 2), worker.log()

    worker.signal(signal.SIGTERM)
    signalled = time.monotonic()
    # Messages the worker's poll in flight hands it while it drains: released at once.
    unstarted = [queue.submit(f"late-{n}", {"marker_dir": str(markers)}) for n in range(2)]
    assert wait_until(lambda: "worker is not taking work" in worker.log(), 30), worker.log()
    released = time.monotonic()
    assert wait_until(lambda: queue.counts()[0] == 2, 30)
    visible_after = time.monotonic() - released
    assert worker.proc.wait(timeout=60) == 0
    drained = time.monotonic() - signalled

    assert [terminal_statuses(sandbox, urn) for urn in running] == [["SUCCESS"]] * 2
    assert [terminal_statuses(sandbox, urn) for urn in unstarted] == [[], []]
    assert set(runs(markers)) == {"drain-0", "drain-1"}
    lost, doubled = lost_and_doubled(sandbox, running, markers)
    left = processes_left(markers)
    assert (lost, doubled, left) == (0, 0, 0)
    assert queue.counts() == (2, 0)
    record(
        f"SIGTERM with 2 running, 2 in a poll (released, visible after {visible_after:.1f} s)",
        4,
        lost,
        doubled,
        left,
        drained,
    )
