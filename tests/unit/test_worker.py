"""Worker: the loop from message to acknowledged result, with the in-memory twins."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from remote_executor.errors import GmsUnavailableError
from remote_executor.gms import MemoryReporter
from remote_executor.models import TERMINAL_STATUSES, Status, TaskKind, TaskResult, request_urn
from remote_executor.queue import MemoryQueue
from tests.unit.worker_support import (
    BAD_RECIPE,
    RefusingReporter,
    WaitFor,
    edited_message,
    message,
    runs,
    terminal,
)


def test_good_message_runs_reports_and_is_deleted(
    running: Callable[..., Any], wait_for: WaitFor, recipe_yaml: Callable[..., str], markers: Path
) -> None:
    queue, reporter = MemoryQueue(), MemoryReporter()
    recipe = recipe_yaml({"marker_dir": str(markers), "write_report": True})
    message_id = queue.send(message("good-1", recipe))
    urn = request_urn("good-1")

    with running(queue, reporter):
        assert wait_for(lambda: len(queue) == 0)

    statuses = reporter.statuses(urn)
    assert statuses[0] == "RUNNING"
    assert statuses[-1] == "SUCCESS"
    assert [s for s in statuses if s in TERMINAL_STATUSES] == ["SUCCESS"]
    final = reporter.results[urn][-1]
    assert final.structured_report is not None
    assert "Succeeded: datahub exited with code 0" in final.report
    assert queue.deleted == [message_id]
    assert runs(markers) == 1


def test_progress_while_the_log_grows_and_nothing_after_the_end(
    running: Callable[..., Any], wait_for: WaitFor, recipe_yaml: Callable[..., str]
) -> None:
    queue, reporter = MemoryQueue(), MemoryReporter()
    queue.send(message("slow-1", recipe_yaml({"lines": 10, "line_delay_seconds": 0.08})))
    urn = request_urn("slow-1")

    with running(queue, reporter):
        assert wait_for(lambda: terminal(reporter, urn))
        time.sleep(0.6)  # three report intervals: a late RUNNING would land here

    statuses = reporter.statuses(urn)
    assert statuses[-1] == "SUCCESS"
    assert statuses[:-1] == ["RUNNING"] * (len(statuses) - 1)
    assert len(statuses) >= 3  # the first RUNNING, at least one update, SUCCESS
    updates = reporter.results[urn][1:-1]
    assert any("line 00" in update.report for update in updates)
    assert all("Running." in update.report.splitlines() for update in updates)
    assert len(queue) == 0


def _not_json(_: Callable[..., str]) -> str:
    return "this is not json"


def _not_the_shape(recipe_yaml: Callable[..., str]) -> str:
    body = json.loads(message("bad-1", recipe_yaml({})))
    body["aspectName"] = "dataHubExecutionRequestResult"
    return json.dumps(body)


def _unknown_task(recipe_yaml: Callable[..., str]) -> str:
    return edited_message("bad-1", recipe_yaml({}), task="RUN_SOMETHING")


def _no_executor(recipe_yaml: Callable[..., str]) -> str:
    return edited_message("bad-1", recipe_yaml({}), executorId="")


def _truncated(_: Callable[..., str]) -> str:
    return json.dumps({"entityUrn": request_urn("bad-1"), "aspectName": "EXECUTOR_SQS_TRUNCATED"})


def _bad_recipe(_: Callable[..., str]) -> str:
    return message("bad-1", BAD_RECIPE)


def _missing_secret(recipe_yaml: Callable[..., str]) -> str:
    return message("bad-1", recipe_yaml({"password": "${DB_PASSWORD}"}))


BAD_INPUTS = [
    pytest.param(_not_json, None, id="not-json"),
    pytest.param(
        _not_the_shape,
        "Rejected the execution request message: message aspectName is "
        "'dataHubExecutionRequestResult', expected 'dataHubExecutionRequestInput' or "
        "'EXECUTOR_SQS_TRUNCATED'",
        id="not-the-shape",
    ),
    pytest.param(
        _unknown_task,
        "Rejected the execution request message: unknown task 'RUN_SOMETHING': this executor "
        "runs RUN_INGEST and TEST_CONNECTION",
        id="unknown-task",
    ),
    pytest.param(
        _no_executor,
        "Rejected the execution request message: request input has no executorId",
        id="no-executor-id",
    ),
    pytest.param(
        _truncated,
        "Rejected the execution request message: message was truncated and GMS has no input for it",
        id="truncated-without-input",
    ),
    pytest.param(
        _bad_recipe,
        "Failed: Recipe error: recipe is not valid YAML or JSON at line 3, column 10: mapping "
        "values are not allowed here",
        id="bad-recipe",
    ),
    pytest.param(
        _missing_secret,
        "Failed: Secret not resolved: secret ${DB_PASSWORD} referenced by the recipe was found "
        "in no source (memory: not among values for OTHER). The subprocess was not started.",
        id="missing-secret",
    ),
]


@pytest.mark.parametrize(("make_body", "reason"), BAD_INPUTS)
def test_bad_input_is_reported_deleted_and_the_next_message_runs(
    running: Callable[..., Any],
    wait_for: WaitFor,
    recipe_yaml: Callable[..., str],
    make_body: Callable[[Callable[..., str]], str],
    reason: str | None,
) -> None:
    queue, reporter = MemoryQueue(), MemoryReporter()
    bad_id = queue.send(make_body(recipe_yaml))
    good_id = queue.send(message("good-1", recipe_yaml({})))

    with running(queue, reporter, secrets={"OTHER": "other-value"}):
        assert wait_for(lambda: len(queue) == 0)

    assert reporter.statuses(request_urn("good-1"))[-1] == "SUCCESS"
    assert sorted(queue.deleted) == sorted([bad_id, good_id])
    bad_urn = request_urn("bad-1")
    if reason is None:
        assert list(reporter.results) == [request_urn("good-1")]
        return
    final = reporter.results[bad_urn][-1]
    assert final.status is Status.FAILURE
    assert reason in final.report.splitlines()
    assert [s for s in reporter.statuses(bad_urn) if s in TERMINAL_STATUSES] == ["FAILURE"]


def test_truncated_message_reads_its_input_from_gms(
    running: Callable[..., Any], wait_for: WaitFor, recipe_yaml: Callable[..., str]
) -> None:
    queue, reporter = MemoryQueue(), MemoryReporter()
    urn = request_urn("big-1")
    full = json.loads(message("big-1", recipe_yaml({"lines": 1})))
    reporter.inputs[urn] = json.loads(full["aspect"]["value"])
    queue.send(json.dumps({"entityUrn": urn, "aspectName": "EXECUTOR_SQS_TRUNCATED"}))

    with running(queue, reporter):
        assert wait_for(lambda: len(queue) == 0)

    assert reporter.statuses(urn)[-1] == "SUCCESS"


def test_message_for_another_executor_is_left_for_its_owner(
    running: Callable[..., Any],
    wait_for: WaitFor,
    recipe_yaml: Callable[..., str],
    markers: Path,
    recording_queue: Any,
) -> None:
    reporter = MemoryReporter()
    message_id = recording_queue.send(
        message("theirs-1", recipe_yaml({"marker_dir": str(markers)}), executor_id="other-executor")
    )

    with running(recording_queue, reporter, foreign_visibility_seconds=45):
        assert wait_for(lambda: recording_queue.releases)

    assert recording_queue.releases == [(message_id, 45)]
    assert len(recording_queue) == 1
    assert recording_queue.visible_count() == 0
    assert recording_queue.deleted == []
    assert reporter.results == {}
    assert runs(markers) == 0


def test_already_finished_request_is_acknowledged_without_running(
    running: Callable[..., Any], wait_for: WaitFor, recipe_yaml: Callable[..., str], markers: Path
) -> None:
    queue, reporter = MemoryQueue(), MemoryReporter()
    urn = request_urn("done-1")
    reporter.report(urn, TaskResult(status=Status.SUCCESS, report="done before", start_time_ms=1))
    message_id = queue.send(message("done-1", recipe_yaml({"marker_dir": str(markers)})))

    with running(queue, reporter):
        assert wait_for(lambda: len(queue) == 0)

    assert queue.deleted == [message_id]
    assert reporter.statuses(urn) == ["SUCCESS"]
    assert runs(markers) == 0


def test_gms_unreadable_before_the_run_releases_the_message(
    running: Callable[..., Any],
    wait_for: WaitFor,
    recipe_yaml: Callable[..., str],
    markers: Path,
    recording_queue: Any,
) -> None:
    class Unreadable(MemoryReporter):
        def read_result(self, urn: str) -> dict[str, Any] | None:
            raise GmsUnavailableError("GMS at http://gms could not be reached: connection refused")

    reporter = Unreadable()
    message_id = recording_queue.send(message("r-1", recipe_yaml({"marker_dir": str(markers)})))

    with running(recording_queue, reporter):
        assert wait_for(lambda: recording_queue.releases)

    assert recording_queue.releases[0] == (message_id, 30)
    assert len(recording_queue) == 1
    assert runs(markers) == 0


def test_final_report_not_accepted_keeps_the_message(
    running: Callable[..., Any], wait_for: WaitFor, recipe_yaml: Callable[..., str]
) -> None:
    queue, reporter = MemoryQueue(), RefusingReporter()
    queue.send(message("kept-1", recipe_yaml({})))

    with running(queue, reporter):
        assert wait_for(lambda: reporter.refused >= 1)

    assert len(queue) == 1
    assert queue.deleted == []
    assert not terminal(reporter, request_urn("kept-1"))


def test_final_report_not_accepted_is_retried_without_running_again(
    running: Callable[..., Any], wait_for: WaitFor, recipe_yaml: Callable[..., str], markers: Path
) -> None:
    queue, reporter = MemoryQueue(), RefusingReporter(failures=1)
    message_id = queue.send(message("retry-1", recipe_yaml({"marker_dir": str(markers)})))

    with running(queue, reporter):
        assert wait_for(lambda: len(queue) == 0)

    assert reporter.refused == 1
    assert reporter.statuses(request_urn("retry-1"))[-1] == "SUCCESS"
    assert queue.deleted == [message_id]
    assert runs(markers) == 1


def test_rejected_message_is_kept_when_its_failure_is_not_accepted(
    running: Callable[..., Any],
    wait_for: WaitFor,
    recipe_yaml: Callable[..., str],
    recording_queue: Any,
) -> None:
    # worker.py: "A message is deleted only after GMS accepted its terminal result." A
    # rejected message names its request, so its FAILURE is that terminal result.
    reporter = RefusingReporter()
    recording_queue.send(_unknown_task(recipe_yaml))

    with running(recording_queue, reporter):
        assert wait_for(lambda: reporter.refused >= 1)
        wait_for(lambda: recording_queue.deleted or recording_queue.releases, timeout_seconds=5)

    assert recording_queue.deleted == [], (
        "the message was deleted although GMS never accepted its FAILURE: the request "
        "stays without a result for good"
    )
    assert len(recording_queue) == 1


def test_max_concurrent_tasks_is_respected(
    running: Callable[..., Any], wait_for: WaitFor, recipe_yaml: Callable[..., str], markers: Path
) -> None:
    queue, reporter = MemoryQueue(), MemoryReporter()
    recipe = recipe_yaml({"marker_dir": str(markers), "sleep_seconds": 0.6})
    for n in range(4):
        queue.send(message(f"slot-{n}", recipe))

    with running(queue, reporter, max_concurrent_tasks=2):
        assert wait_for(lambda: len(queue) == 0, timeout_seconds=30)

    seen = [int(line) for line in (markers / "counts").read_text().split()]
    assert runs(markers) == 4
    assert max(seen) == 2
    for n in range(4):
        assert reporter.statuses(request_urn(f"slot-{n}"))[-1] == "SUCCESS"


def test_lease_is_extended_while_a_task_outlives_it(
    running: Callable[..., Any], wait_for: WaitFor, recipe_yaml: Callable[..., str], markers: Path
) -> None:
    queue, reporter = MemoryQueue(), MemoryReporter()
    queue.send(message("long-1", recipe_yaml({"marker_dir": str(markers), "sleep_seconds": 2})))

    with running(queue, reporter, lease_seconds=1, max_concurrent_tasks=2):
        assert wait_for(lambda: len(queue) == 0, timeout_seconds=30)

    assert runs(markers) == 1  # never redelivered while it ran
    assert reporter.statuses(request_urn("long-1"))[-1] == "SUCCESS"


def test_warm_stop_lets_a_running_task_finish(
    running: Callable[..., Any], wait_for: WaitFor, recipe_yaml: Callable[..., str], markers: Path
) -> None:
    queue, reporter = MemoryQueue(), MemoryReporter()
    queue.send(message("warm-1", recipe_yaml({"marker_dir": str(markers), "sleep_seconds": 1})))

    with running(queue, reporter, shutdown_grace_seconds=60) as worker:
        assert wait_for(lambda: runs(markers) == 1)
        worker.stop()
        assert not worker.ready

    assert reporter.statuses(request_urn("warm-1"))[-1] == "SUCCESS"
    assert len(queue) == 0


def test_cold_stop_stops_the_task_and_releases_its_message(
    running: Callable[..., Any],
    wait_for: WaitFor,
    recipe_yaml: Callable[..., str],
    markers: Path,
    recording_queue: Any,
) -> None:
    reporter = MemoryReporter()
    message_id = recording_queue.send(
        message("cold-1", recipe_yaml({"marker_dir": str(markers), "sleep_seconds": 300}))
    )

    with running(recording_queue, reporter, shutdown_grace_seconds=600) as worker:
        assert wait_for(lambda: runs(markers) == 1)
        worker.stop()  # the first signal: drain, with a grace far longer than the test
        worker.stop(force=True)  # the second: stop now

    # Released at once for another worker (again, if the stopping loop received it anew).
    assert set(recording_queue.releases) == {(message_id, 0)}
    assert recording_queue.deleted == []
    assert recording_queue.visible_count() == 1
    assert not terminal(reporter, request_urn("cold-1"))


def test_test_connection_request_runs_with_the_flag(
    running: Callable[..., Any], wait_for: WaitFor, recipe_yaml: Callable[..., str], markers: Path
) -> None:
    queue, reporter = MemoryQueue(), MemoryReporter()
    recipe = recipe_yaml({"marker_dir": str(markers), "write_report": True})
    queue.send(message("tc-1", recipe, task=TaskKind.TEST_CONNECTION))

    with running(queue, reporter):
        assert wait_for(lambda: len(queue) == 0)

    [marker] = markers.glob("*.json")
    assert json.loads(marker.read_text())["argv"][-1] == "--test-source-connection"
    final = reporter.results[request_urn("tc-1")][-1]
    assert final.status is Status.SUCCESS
    assert final.task is TaskKind.TEST_CONNECTION
