"""Fail closed, with the in-memory twins: every failure a result, runs counted in GMS,
one run per request, heartbeats whatever the log does, results never written over
another run's."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from remote_executor.config import WorkerConfig
from remote_executor.errors import GmsRejectedError, LeaseLostError
from remote_executor.gms import MemoryReporter, RequestState
from remote_executor.intake import Intake
from remote_executor.models import Status, TaskResult, request_urn
from remote_executor.outcome import Decision, Outcome
from remote_executor.queue import Lease, MemoryQueue
from remote_executor.runrecord import RunRecord, now_ms
from tests.unit.conftest import RecordingQueue
from tests.unit.worker_support import WaitFor, message, runs, terminal

Running = Callable[..., Any]
OURS = "remote@here:1:aaaaaa"


def running_result(record: RunRecord) -> TaskResult:
    return TaskResult(
        status=Status.RUNNING, report=f"header\n{record.line()}\nRunning.", start_time_ms=1
    )


def lease(receive_count: int = 1) -> Lease:
    return Lease("m-1", "r-1", "{}", receive_count=receive_count)


def planned(reporter: MemoryReporter, receive_count: int = 1, **config: Any) -> Any:
    intake = Intake(reporter, WorkerConfig(worker_id="remote", **config), OURS)
    body = message("req-1", "source: {type: fake}")
    reporter.inputs[request_urn("req-1")] = json.loads(json.loads(body)["aspect"]["value"])
    admitted = intake.parse(Lease("m-1", "r-1", body, receive_count=receive_count))
    assert not isinstance(admitted, Decision)
    return intake.preflight(admitted, lease(receive_count))


def test_a_request_with_a_fresh_heartbeat_elsewhere_is_left_with_a_delay() -> None:
    reporter = MemoryReporter()
    other = RunRecord(1, 3, "remote", "remote@there:2:bbbbbb", now_ms())
    reporter.report(request_urn("req-1"), running_result(other))

    decision = planned(reporter, receive_count=2, retry_delay_seconds=30)

    assert isinstance(decision, Decision)
    assert decision.outcome is Outcome.RELEASE
    assert decision.delay_seconds == 60  # the retry delay times the receive count
    assert re.fullmatch(
        r"run 1 of this request runs on worker remote \(instance remote@there:2:bbbbbb\), "
        r"heartbeat \d+ s ago",
        decision.reason,
    )


def test_a_stale_run_is_counted_and_the_next_one_planned() -> None:
    reporter = MemoryReporter()
    dead = RunRecord(1, 3, "remote", "remote@there:2:bbbbbb", now_ms() - 60_000)
    reporter.report(request_urn("req-1"), running_result(dead))

    record = planned(reporter, receive_count=7, report_interval_seconds=5)

    assert isinstance(record, RunRecord)
    assert (record.attempt, record.limit, record.instance) == (2, 3, OURS)


def test_a_run_given_back_by_a_drain_may_start_at_once() -> None:
    reporter = MemoryReporter()
    released = RunRecord(1, 3, "remote", "remote@there:2:bbbbbb", now_ms()).release()
    reporter.report(request_urn("req-1"), running_result(released))

    record = planned(reporter)

    assert isinstance(record, RunRecord) and record.attempt == 2


def test_the_receive_ceiling_fails_a_request_that_never_ran() -> None:
    reporter = MemoryReporter()

    decision = planned(reporter, receive_count=51)

    assert decision == Decision(Outcome.ACKNOWLEDGE, "FAILURE without running")
    assert reporter.results[request_urn("req-1")][-1].report == (
        "Failed: the message was received 51 times and never ran to a result (the limit is "
        "50); see the workers' logs for this request."
    )


def test_retry_delays_grow_and_are_never_zero() -> None:
    intake = Intake(MemoryReporter(), WorkerConfig(worker_id="remote"), OURS)
    delays = [intake.retry_later("x", lease(n)).delay_seconds for n in (0, 1, 2, 40)]
    assert delays == [30, 30, 60, 900]


def test_two_copies_received_together_run_once(
    running: Running, wait_for: WaitFor, recipe_yaml: Callable[..., str], markers: Path
) -> None:
    queue, reporter = RecordingQueue(), MemoryReporter()
    recipe = recipe_yaml({"marker_dir": str(markers), "sleep_seconds": 1})
    urn = request_urn("twice-1")
    queue.send(message("twice-1", recipe))
    queue.send(message("twice-1", recipe))

    with running(queue, reporter, retry_delay_seconds=1):
        assert wait_for(lambda: len(queue) == 0)

    assert runs(markers) == 1
    assert [s for s in reporter.statuses(urn) if s != "RUNNING"] == ["SUCCESS"]
    assert all(delay > 0 for _, delay in queue.releases)


def test_an_unexpected_error_is_a_failure_on_the_first_attempt(
    running: Running, wait_for: WaitFor, recipe_yaml: Callable[..., str], markers: Path
) -> None:
    class Broken(MemoryReporter):
        def read_state(self, urn: str) -> RequestState:
            raise RuntimeError("a bug in reading the state")

    queue, reporter = RecordingQueue(), Broken()
    urn = request_urn("bug-1")
    message_id = queue.send(message("bug-1", recipe_yaml({"marker_dir": str(markers)})))

    with running(queue, reporter) as worker:
        assert wait_for(lambda: terminal(reporter, urn))
        assert wait_for(lambda: len(queue) == 0)
        assert worker.not_alive_because is None

    assert reporter.results[urn][-1].report == (
        "Failed: unexpected error in the executor: RuntimeError: a bug in reading the state"
    )
    assert queue.deleted == [message_id]
    assert queue.releases == []
    assert runs(markers) == 0


def test_a_task_directory_that_cannot_be_made_is_a_failure(
    running: Running,
    wait_for: WaitFor,
    recipe_yaml: Callable[..., str],
    make_context: Callable[..., Any],
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "work"
    blocker.write_text("a file where the work directory should be")
    queue, reporter = MemoryQueue(), MemoryReporter()
    urn = request_urn("nodir-1")
    queue.send(message("nodir-1", recipe_yaml({})))

    with running(queue, reporter):
        assert wait_for(lambda: terminal(reporter, urn))

    assert (
        reporter.results[urn][-1]
        .report.splitlines()[2]
        .startswith("Failed: unexpected error in the executor: FileExistsError: ")
    )


def test_heartbeats_go_on_while_the_log_is_silent(
    running: Running, wait_for: WaitFor, recipe_yaml: Callable[..., str]
) -> None:
    queue, reporter = MemoryQueue(), MemoryReporter()
    urn = request_urn("quiet-1")
    queue.send(message("quiet-1", recipe_yaml({"sleep_seconds": 2})))

    with running(queue, reporter, report_interval_seconds=0.2):
        assert wait_for(lambda: terminal(reporter, urn))

    beats = [
        RunRecord.parse({"status": "RUNNING", "report": r.report})
        for r in reporter.results[urn]
        if r.status is Status.RUNNING
    ]
    assert len(beats) >= 4
    times = [beat.at_ms for beat in beats if beat is not None]
    assert times == sorted(times) and len(set(times)) == len(times)


def test_a_result_gms_refuses_twice_is_acknowledged_not_run_again(
    running: Running, wait_for: WaitFor, recipe_yaml: Callable[..., str], markers: Path
) -> None:
    class Refusing(MemoryReporter):
        def report(self, urn: str, result: TaskResult) -> None:
            if result.status.is_terminal:
                raise GmsRejectedError("GMS answered 422 for POST http://gms/aspects", 422)
            super().report(urn, result)

    queue, reporter = RecordingQueue(), Refusing()
    message_id = queue.send(message("refused-1", recipe_yaml({"marker_dir": str(markers)})))

    with running(queue, reporter):
        assert wait_for(lambda: len(queue) == 0)

    assert queue.deleted == [message_id]
    assert queue.releases == []
    assert runs(markers) == 1


def test_after_a_lost_lease_no_result_lands_on_another_runs_request(
    running: Running, wait_for: WaitFor, recipe_yaml: Callable[..., str], markers: Path
) -> None:
    urn = request_urn("taken-1")

    class Losing(MemoryQueue):
        def extend_many(self, leases: Any, lease_seconds: int) -> dict[str, Any]:
            if runs(markers):  # once the task runs, another worker takes the request over
                other = RunRecord(1, 3, "remote", "remote@there:2:bbbbbb", now_ms())
                MemoryReporter.report(reporter, urn, running_result(other))
                return {lease.message_id: LeaseLostError("receipt is stale") for lease in leases}
            return super().extend_many(leases, lease_seconds)

    queue, reporter = Losing(), MemoryReporter()
    queue.send(message("taken-1", recipe_yaml({"marker_dir": str(markers), "sleep_seconds": 60})))

    with running(
        queue, reporter, lease_seconds=3, kill_grace_seconds=0.5, report_interval_seconds=1.0
    ) as worker:
        assert wait_for(lambda: runs(markers) == 1)
        sample = worker.metrics.registry.get_sample_value
        assert wait_for(lambda: sample("executor_leases_lost_total") == 1, 30)
        assert wait_for(lambda: sample("executor_tasks_running") == 0, 30)

    assert not terminal(reporter, urn)
    last = reporter.results[urn][-1].report.splitlines()[1]
    assert last.startswith("Run 1 of at most 3, worker remote, instance remote@there")
