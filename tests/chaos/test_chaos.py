"""Break real workers on purpose and check that no task is lost, doubled or left running.

Each scenario records a row (tasks, lost, doubled, processes left, time to
recover) for the table printed at the end of the session.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

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


def assert_none_lost_doubled_or_left(
    scenario: str,
    sandbox: Sandbox,
    urns: list[str],
    markers: Path,
    recover_seconds: float,
    *,
    tasks: int | None = None,
) -> None:
    """Every request has one terminal status, ran to its end once, and left no process;
    the row goes to the table."""
    lost = sum(1 for urn in urns if not terminal_statuses(sandbox, urn))
    doubled = sum(1 for urn in urns if len(terminal_statuses(sandbox, urn)) > 1)
    doubled += sum(1 for _, ends in runs(markers).values() if ends > 1)
    left = processes_left(markers)
    record(
        scenario,
        tasks or len(urns),
        lost=lost,
        doubled=doubled,
        processes_left=left,
        recover_seconds=recover_seconds,
    )
    assert (lost, doubled, left) == (0, 0, 0)


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

    assert_none_lost_doubled_or_left(
        "kill -9 the worker mid-run", sandbox, urns, markers, recovered
    )
    assert [terminal_statuses(sandbox, urn) for urn in urns] == [["SUCCESS"]] * tasks
    assert all(ends == 1 for _, ends in runs(markers).values())
    assert wait_until(queue.is_empty, 30)


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
    assert queue.counts() == (2, 0)
    assert_none_lost_doubled_or_left(
        f"SIGTERM with 2 running, 2 in a poll (released, visible after {visible_after:.1f} s)",
        sandbox,
        running,
        markers,
        drained,
        tasks=4,
    )


def _gms_outage(sandbox: Sandbox, mode: str) -> Callable[[], None]:
    """Start an outage of GMS; returns the function that ends it."""
    if mode == "503":
        sandbox.gms.fail_with(503)
        return lambda: sandbox.gms.fail_with(None)
    sandbox.gms.stop()

    def restart() -> None:
        sandbox.gms.start()

    return restart


@pytest.mark.parametrize("mode", ["503", "refused"])
def test_gms_outage_mid_run_every_result_arrives_after_it_recovers(
    sandbox: Sandbox, queue: ChaosQueue, workers: Workers, markers: Path, mode: str
) -> None:
    tasks = 5
    # The stand-in is shared: earlier tests' deliberate 400s (the bad-message storm) are theirs.
    rejected_before = len(sandbox.gms.rejected)
    config = {"marker_dir": str(markers), "sleep_seconds": 2, "lines": 3}
    urns = [queue.submit(f"gms-{mode}-{n}", config) for n in range(tasks)]
    workers(EXECUTOR_MAX_CONCURRENT_TASKS=str(tasks), EXECUTOR_LEASE_SECONDS="6")
    assert wait_until(lambda: len(runs(markers)) == tasks)

    end_outage = _gms_outage(sandbox, mode)
    try:
        # Every task ends while GMS is down, and the results wait through a few lease lengths.
        assert wait_until(lambda: sum(e for _, e in runs(markers).values()) == tasks)
        time.sleep(8)
        assert not any(terminal_statuses(sandbox, urn) for urn in urns)
    finally:
        end_outage()
    recovered_at = time.monotonic()
    assert wait_until(lambda: all(terminal_statuses(sandbox, urn) for urn in urns))
    recovered = time.monotonic() - recovered_at

    assert [terminal_statuses(sandbox, urn) for urn in urns] == [["SUCCESS"]] * tasks
    assert all(counts == (1, 1) for counts in runs(markers).values())
    assert wait_until(queue.is_empty, 30)
    assert sandbox.gms.rejected[rejected_before:] == []
    assert_none_lost_doubled_or_left(
        f"GMS {'answers 503' if mode == '503' else 'refuses connections'} mid-run",
        sandbox,
        urns,
        markers,
        recovered,
    )


def test_memory_hog_hang_and_process_tree_end_with_a_reason_and_nothing_left(
    sandbox: Sandbox, queue: ChaosQueue, workers: Workers, markers: Path
) -> None:
    marker = {"marker_dir": str(markers)}
    hog = queue.submit("hog", {**marker, "hog_memory_mb": 4096, "sleep_seconds": 60})
    hang = queue.submit("hang", {**marker, "sleep_seconds": 3600}, timeout_seconds=3)
    tree = queue.submit("tree", {**marker, "fork_sleepers": 3, "sleep_seconds": 3600})
    workers(EXECUTOR_MAX_CONCURRENT_TASKS="3", EXECUTOR_TASK_MEMORY_LIMIT_MB="256")
    assert wait_until((markers / "tree.pids").exists)
    sandbox.gms.put_aspect(
        tree,
        "dataHubExecutionRequestSignal",
        {
            "signal": "KILL",
            "executorId": "remote",
            "createdAt": {"time": 1700000000000, "actor": "urn:li:corpuser:chaos"},
        },
    )
    killed_at = time.monotonic()
    urns = [hog, hang, tree]
    assert wait_until(lambda: all(terminal_statuses(sandbox, urn) for urn in urns))
    ended = time.monotonic() - killed_at

    assert [terminal_statuses(sandbox, urn) for urn in urns] == [
        ["FAILURE"],
        ["TIMEOUT"],
        ["CANCELLED"],
    ]
    reports = {urn: sandbox.gms.last_result(urn)["report"] for urn in urns}  # type: ignore[index]
    assert re.search(r"out of memory \(limit 256 MiB, peak \d+ MiB\)", reports[hog])
    assert "Timed out: datahub stopped (limit 3 s, set by args.timeout_seconds" in reports[hang]
    assert (
        "Cancelled: datahub stopped (KILL signal from urn:li:corpuser:chaos at "
        "2023-11-14 22:13:20 UTC): killed by signal SIGTERM (15)" in reports[tree]
    )
    assert len((markers / "tree.pids").read_text().split()) == 4  # datahub and 3 children
    assert wait_until(queue.is_empty, 30)
    assert_none_lost_doubled_or_left(
        "memory hog, hang, tree of sleepers", sandbox, urns, markers, ended
    )
