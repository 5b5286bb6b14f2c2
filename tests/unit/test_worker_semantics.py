"""Worker semantics users rely on: dead letters, cancel, attempts, drain, leases, tokens."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from remote_executor.errors import GmsAuthError, GmsRejectedError, LeaseLostError, QueueError
from remote_executor.gms import MemoryReporter, RequestState
from remote_executor.models import Status, TaskResult, request_urn
from remote_executor.queue import Lease, MemoryQueue
from remote_executor.runner import group_has_live_members
from remote_executor.runrecord import RunRecord
from tests.unit.worker_support import WaitFor, edited_message, message, runs, terminal

Running = Callable[..., Any]
KILL = {
    "signal": "KILL",
    "executorId": "remote",
    "createdAt": {"time": 1700000000000, "actor": "urn:li:corpuser:ann"},
}


def child_pids(markers: Path) -> list[int]:
    return [json.loads(path.read_text())["pid"] for path in markers.glob("*.json")]


def test_bad_messages_go_to_the_dead_letter_queue_with_the_reason(
    running: Running, wait_for: WaitFor, recipe_yaml: Callable[..., str]
) -> None:
    queue, reporter = MemoryQueue(dead_letters=True), MemoryReporter()
    queue.send("not json at all")
    unknown = edited_message("bad-1", recipe_yaml({}), task="REBOOT")
    queue.send(unknown)
    queue.send(message("good-1", recipe_yaml({})))

    with running(queue, reporter):
        assert wait_for(lambda: len(queue) == 0)

    assert sorted(queue.dead_letters) == sorted(
        [
            (
                "not json at all",
                "message body is not JSON (Expecting value: line 1 column 1 (char 0))",
            ),
            (unknown, "unknown task 'REBOOT': this executor runs RUN_INGEST and TEST_CONNECTION"),
        ]
    )
    assert reporter.statuses(request_urn("bad-1")) == ["FAILURE"]
    assert reporter.statuses(request_urn("good-1"))[-1] == "SUCCESS"


def test_kill_signal_cancels_a_running_task_and_its_whole_group(
    running: Running, wait_for: WaitFor, recipe_yaml: Callable[..., str], markers: Path
) -> None:
    queue, reporter = MemoryQueue(), MemoryReporter()
    urn = request_urn("kill-1")
    queue.send(message("kill-1", recipe_yaml({"marker_dir": str(markers), "sleep_seconds": 300})))

    with running(queue, reporter, signal_poll_seconds=0.2):
        assert wait_for(lambda: runs(markers) == 1)
        reporter.signals[urn] = KILL
        assert wait_for(lambda: len(queue) == 0)

    final = reporter.results[urn][-1]
    assert final.status is Status.CANCELLED
    assert re.search(
        r"^Cancelled: datahub stopped \(KILL signal from urn:li:corpuser:ann at "
        r"2023-11-14 22:13:20 UTC\): killed by signal SIGTERM \(15\) after \d+\.\d s\.$",
        final.report,
        re.M,
    )
    assert not any(group_has_live_members(pid) for pid in child_pids(markers))


def test_kill_before_start_cancels_without_running(
    running: Running, wait_for: WaitFor, recipe_yaml: Callable[..., str], markers: Path
) -> None:
    queue, reporter = MemoryQueue(), MemoryReporter()
    urn = request_urn("kill-2")
    reporter.signals[urn] = KILL
    queue.send(message("kill-2", recipe_yaml({"marker_dir": str(markers)})))

    with running(queue, reporter):
        assert wait_for(lambda: len(queue) == 0)

    assert reporter.statuses(urn) == ["CANCELLED"]
    assert reporter.results[urn][-1].report == (
        "Cancelled: KILL signal from urn:li:corpuser:ann at 2023-11-14 22:13:20 UTC."
    )
    assert runs(markers) == 0


def test_a_request_that_ran_max_attempts_times_gives_up_without_running(
    running: Running, wait_for: WaitFor, recipe_yaml: Callable[..., str], markers: Path
) -> None:
    queue, reporter = MemoryQueue(), MemoryReporter()
    urn = request_urn("tired-1")
    # Its third run's worker died: RUNNING, with a heartbeat long gone.
    record = RunRecord(3, 3, "remote", "remote@gone:1:abcdef", 1_000)
    reporter.report(
        urn, TaskResult(status=Status.RUNNING, report=f"h\n{record.line()}", start_time_ms=1_000)
    )
    message_id = queue.send(message("tired-1", recipe_yaml({"marker_dir": str(markers)})))

    with running(queue, reporter, max_attempts=3):
        assert wait_for(lambda: len(queue) == 0)

    assert reporter.statuses(urn) == ["RUNNING", "FAILURE"]
    assert reporter.results[urn][-1].report.startswith(
        "Failed: gave up after 3 runs (EXECUTOR_MAX_ATTEMPTS=3); each started and ended "
        "without a result"
    )
    assert queue.deleted == [message_id]
    assert runs(markers) == 0


def test_deliveries_are_not_attempts(
    running: Running, wait_for: WaitFor, recipe_yaml: Callable[..., str], markers: Path
) -> None:
    queue, reporter = MemoryQueue(), MemoryReporter()
    urn = request_urn("redelivered-1")
    queue.send(message("redelivered-1", recipe_yaml({"marker_dir": str(markers)})))
    for _ in range(10):  # ten deliveries that never ran (outages, drains)
        queue.receive(1, 0, 0)

    with running(queue, reporter, max_attempts=3):
        assert wait_for(lambda: terminal(reporter, urn))

    assert reporter.statuses(urn)[-1] == "SUCCESS"
    assert (
        reporter.results[urn][0]
        .report.splitlines()[1]
        .startswith("Run 1 of at most 3, worker remote, instance remote@")
    )
    assert runs(markers) == 1


def test_drain_stops_a_task_after_the_grace_and_releases_it_at_once(
    running: Running, wait_for: WaitFor, recipe_yaml: Callable[..., str], markers: Path
) -> None:
    queue, reporter = MemoryQueue(), MemoryReporter()
    urn = request_urn("drain-2")
    queue.send(message("drain-2", recipe_yaml({"marker_dir": str(markers), "sleep_seconds": 300})))

    with running(queue, reporter, shutdown_grace_seconds=0.5) as worker:
        assert wait_for(lambda: runs(markers) == 1)
        worker.stop()

    assert not terminal(reporter, urn)
    lines = reporter.results[urn][-1].report.splitlines()
    assert re.fullmatch(r"Run 1 of at most 3, worker remote, instance \S+, released \d+", lines[1])
    assert lines[2] == (
        "Stopped by worker shutting down: the shutdown grace of 0.5 s ran out. "
        "The request was released for a retry by another worker."
    )
    assert queue.visible_count() == 1
    assert not any(group_has_live_members(pid) for pid in child_pids(markers))


def test_lost_lease_stops_the_task_so_no_second_copy_runs_beside_it(
    running: Running, wait_for: WaitFor, recipe_yaml: Callable[..., str], markers: Path
) -> None:
    class LosingQueue(MemoryQueue):
        extensions = 0

        def extend(self, lease: Lease, lease_seconds: int) -> None:
            self.extensions += 1
            if self.extensions > 1:  # the first one, before the start, succeeds
                raise LeaseLostError(f"lease of message {lease.message_id} lost: gone")
            super().extend(lease, lease_seconds)

    queue, reporter = LosingQueue(), MemoryReporter()
    urn = request_urn("lost-1")
    queue.send(message("lost-1", recipe_yaml({"marker_dir": str(markers), "sleep_seconds": 300})))

    with running(queue, reporter, lease_seconds=3):
        assert wait_for(lambda: terminal(reporter, urn))

    final = reporter.results[urn][-1]
    assert final.status is Status.FAILURE
    assert re.search(
        r"^Stopped: datahub stopped \(the message's lease was lost \(lease of message m-1 lost: "
        r"gone\); stopped so that no second copy runs beside this one\): killed by signal "
        r"SIGTERM \(15\)",
        final.report,
        re.M,
    )


def test_lease_that_cannot_be_extended_does_not_start(
    running: Running, wait_for: WaitFor, recipe_yaml: Callable[..., str], markers: Path
) -> None:
    class StuckQueue(MemoryQueue):
        def __init__(self) -> None:
            super().__init__()
            self.releases: list[int] = []

        def extend(self, lease: Lease, lease_seconds: int) -> None:
            raise QueueError("visibility change failed: AccessDenied")

        def release(self, lease: Lease, delay_seconds: int = 0) -> None:
            self.releases.append(delay_seconds)
            super().release(lease, delay_seconds)

    queue, reporter = StuckQueue(), MemoryReporter()
    queue.send(message("stuck-1", recipe_yaml({"marker_dir": str(markers)})))

    with running(queue, reporter, retry_delay_seconds=30):
        assert wait_for(lambda: queue.releases)

    assert queue.releases == [30]
    assert runs(markers) == 0
    assert reporter.results == {}


def test_refused_token_makes_the_worker_unready_until_it_is_accepted(
    running: Running, wait_for: WaitFor, recipe_yaml: Callable[..., str]
) -> None:
    refusal = GmsAuthError("GMS answered 401 for GET http://gms/aspects: token expired", 401)

    class LockedOut(MemoryReporter):
        def read_state(self, urn: str) -> RequestState:
            if self.refuse_token is not None:
                raise self.refuse_token
            return super().read_state(urn)

    queue, reporter = MemoryQueue(), LockedOut()
    reporter.refuse_token = refusal
    queue.send(message("locked-1", recipe_yaml({})))
    urn = request_urn("locked-1")

    with running(queue, reporter, token_recheck_seconds=0.2) as worker:
        assert wait_for(lambda: not worker.ready)
        assert wait_for(lambda: queue.visible_count() == 1)
        assert reporter.results == {}
        reporter.refuse_token = None
        assert wait_for(lambda: terminal(reporter, urn))
        assert worker.ready

    assert reporter.statuses(urn)[-1] == "SUCCESS"


def test_refused_token_at_the_end_keeps_the_result_until_accepted_without_rerunning(
    running: Running, wait_for: WaitFor, recipe_yaml: Callable[..., str], markers: Path
) -> None:
    class TokenRevoked(MemoryReporter):
        def report(self, urn: str, result: TaskResult) -> None:
            if result.status.is_terminal and self.refuse_token is not None:
                raise self.refuse_token
            super().report(urn, result)

    queue, reporter = MemoryQueue(), TokenRevoked()
    urn = request_urn("revoked-1")
    queue.send(message("revoked-1", recipe_yaml({"marker_dir": str(markers)})))
    reporter.refuse_token = GmsAuthError("GMS answered 403 for POST http://gms/aspects", 403)

    with running(queue, reporter, token_recheck_seconds=0.2) as worker:
        assert wait_for(lambda: not worker.ready)
        assert len(queue) == 1
        reporter.refuse_token = None
        assert wait_for(lambda: len(queue) == 0)

    assert reporter.statuses(urn)[-1] == "SUCCESS"
    assert runs(markers) == 1


def test_result_gms_refuses_is_sent_again_short(
    running: Running, wait_for: WaitFor, recipe_yaml: Callable[..., str]
) -> None:
    class Picky(MemoryReporter):
        def report(self, urn: str, result: TaskResult) -> None:
            if result.structured_report is not None:
                raise GmsRejectedError("GMS answered 413 for POST http://gms/aspects", 413)
            super().report(urn, result)

    queue, reporter = MemoryQueue(), Picky()
    urn = request_urn("picky-1")
    queue.send(message("picky-1", recipe_yaml({"write_report": True, "lines": 3})))

    with running(queue, reporter):
        assert wait_for(lambda: len(queue) == 0)

    final = reporter.results[urn][-1]
    assert final.status is Status.SUCCESS
    lines = final.report.splitlines()
    assert lines[2].startswith("Succeeded: datahub exited with code 0 after")
    assert lines[3].startswith(
        "GMS refused the full report: GMS answered 413 for POST http://gms/aspects. "
        "The full log and report are on the worker: "
    )
    assert len(lines) == 4
