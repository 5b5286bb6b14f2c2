"""The queue is a doorbell: with EXECUTOR_REQUIRE_GMS_INPUT on, the worker runs the input GMS
holds for the urn, and a message for a request GMS does not know runs nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from remote_executor.errors import GmsRejectedError
from remote_executor.gms import MemoryReporter, RequestState
from remote_executor.messages import TRUNCATED_ASPECT
from remote_executor.models import request_urn
from remote_executor.queue import MemoryQueue
from tests.unit.worker_support import WaitFor, message, runs, terminal

Running = Callable[..., Any]


def input_of(body: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(json.loads(body)["aspect"]["value"])
    return value


def written(reporter: MemoryReporter, request_id: str, recipe: str, **kwargs: Any) -> str:
    """The message of a request that a producer wrote to GMS first."""
    body = message(request_id, recipe, **kwargs)
    reporter.inputs[request_urn(request_id)] = input_of(body)
    return body


def test_a_request_gms_never_saw_is_dead_lettered_and_the_next_one_runs(
    running: Running, wait_for: WaitFor, recipe_yaml: Callable[..., str], markers: Path
) -> None:
    queue, reporter = MemoryQueue(dead_letters=True), MemoryReporter()
    recipe = recipe_yaml({"marker_dir": str(markers)})
    queue.send(message("forged-1", recipe))
    queue.send(written(reporter, "known-1", recipe))

    with running(queue, reporter, require_gms_input=True) as worker:
        assert wait_for(lambda: terminal(reporter, request_urn("known-1")))
        assert wait_for(lambda: len(queue) == 0)
        assert worker.not_alive_because is None

    assert [reason for _, reason in queue.dead_letters] == [
        "GMS holds no input for urn:li:dataHubExecutionRequest:forged-1: the request was never "
        "written to GMS, so it does not run (every producer writes the request to GMS before "
        "queueing it; EXECUTOR_REQUIRE_GMS_INPUT=false runs the message's copy)"
    ]
    assert request_urn("forged-1") not in reporter.results  # nothing written for a stranger
    assert reporter.statuses(request_urn("known-1"))[-1] == "SUCCESS"
    assert runs(markers) == 1


def test_the_recipe_gms_holds_runs_not_the_messages_copy(
    running: Running, wait_for: WaitFor, recipe_yaml: Callable[..., str], tmp_path: Path
) -> None:
    gms_markers, message_markers = tmp_path / "gms", tmp_path / "message"
    gms_markers.mkdir()
    message_markers.mkdir()
    queue, reporter = MemoryQueue(), MemoryReporter()
    written(reporter, "edited-1", recipe_yaml({"marker_dir": str(gms_markers)}))
    queue.send(message("edited-1", recipe_yaml({"marker_dir": str(message_markers)})))

    with running(queue, reporter, require_gms_input=True):
        assert wait_for(lambda: terminal(reporter, request_urn("edited-1")))

    assert reporter.statuses(request_urn("edited-1"))[-1] == "SUCCESS"
    assert runs(gms_markers) == 1
    assert runs(message_markers) == 0


def test_the_executor_id_is_gms_s_too(
    running: Running, wait_for: WaitFor, recipe_yaml: Callable[..., str], markers: Path
) -> None:
    queue, reporter = MemoryQueue(), MemoryReporter()
    recipe = recipe_yaml({"marker_dir": str(markers)})
    written(reporter, "theirs-1", recipe, executor_id="team-b")
    queue.send(message("theirs-1", recipe, executor_id="remote"))

    with running(queue, reporter, require_gms_input=True, foreign_visibility_seconds=60):
        assert wait_for(lambda: queue.visible_count() == 0 and len(queue) == 1)

    assert reporter.results == {}
    assert runs(markers) == 0


def test_a_truncated_message_runs_the_input_gms_holds(
    running: Running, wait_for: WaitFor, recipe_yaml: Callable[..., str], markers: Path
) -> None:
    queue, reporter = MemoryQueue(), MemoryReporter()
    body = json.loads(written(reporter, "big-1", recipe_yaml({"marker_dir": str(markers)})))
    body["aspectName"] = TRUNCATED_ASPECT
    del body["aspect"]
    queue.send(json.dumps(body))

    with running(queue, reporter, require_gms_input=True):
        assert wait_for(lambda: terminal(reporter, request_urn("big-1")))

    assert reporter.statuses(request_urn("big-1"))[-1] == "SUCCESS"
    assert runs(markers) == 1


def test_a_urn_gms_refuses_to_read_is_dead_lettered_not_retried(
    running: Running, wait_for: WaitFor, recipe_yaml: Callable[..., str]
) -> None:
    refusal = GmsRejectedError("GMS answered 400 for GET http://gms/entitiesV2/x: bad urn", 400)

    class Refusing(MemoryReporter):
        def read_state(self, urn: str) -> RequestState:
            raise refusal

    queue, reporter = MemoryQueue(dead_letters=True), Refusing()
    queue.send(message("odd-1", recipe_yaml({})))

    with running(queue, reporter, require_gms_input=True) as worker:
        assert wait_for(lambda: len(queue) == 0)
        assert worker.not_alive_because is None

    assert [reason for _, reason in queue.dead_letters] == [
        "GMS refused to read the request: GMS answered 400 for GET http://gms/entitiesV2/x: bad urn"
    ]
