"""The values on a task's path: statuses, urns, and the result aspect GMS receives."""

from __future__ import annotations

import json

from remote_executor.models import ExecutionRequest, Status, TaskKind, TaskResult, request_urn


def test_only_running_is_not_terminal() -> None:
    assert [status.value for status in Status if not status.is_terminal] == ["RUNNING"]
    assert {status.value for status in Status if status.is_terminal} == {
        "SUCCESS", "FAILURE", "CANCELLED", "TIMEOUT", "ABORTED", "DUPLICATE",
    }  # fmt: skip


def test_request_urn() -> None:
    request = ExecutionRequest(
        request_id="6f1c2e", task=TaskKind.RUN_INGEST, executor_id="remote", recipe="x"
    )

    assert request_urn("6f1c2e") == "urn:li:dataHubExecutionRequest:6f1c2e"
    assert request.urn == "urn:li:dataHubExecutionRequest:6f1c2e"


def test_full_result_aspect() -> None:
    result = TaskResult(
        status=Status.FAILURE,
        report="Failed.",
        start_time_ms=1,
        duration_ms=2,
        structured_report="{}",
        task=TaskKind.TEST_CONNECTION,
    )

    assert json.loads(result.to_json()) == {
        "status": "FAILURE",
        "report": "Failed.",
        "startTimeMs": 1,
        "durationMs": 2,
        "structuredReport": {
            "type": "TEST_CONNECTION",
            "serializedValue": "{}",
            "contentType": "application/json",
        },
    }


def test_running_result_leaves_out_what_it_does_not_have() -> None:
    result = TaskResult(status=Status.RUNNING, report="Running.", start_time_ms=1700000000000)

    assert result.to_aspect() == {
        "status": "RUNNING",
        "report": "Running.",
        "startTimeMs": 1700000000000,
    }
    assert (
        result.to_json() == '{"status":"RUNNING","report":"Running.","startTimeMs":1700000000000}'
    )
