"""The bridge's parts against the GMS stand-in and in-memory queues: what is forwarded and
as what, when the offset is committed, and what the sweeper ends."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from remote_executor.bridge.events import EventsApi, decode_change
from remote_executor.bridge.forward import Forwarded, Forwarder, Skipped, truncated_message
from remote_executor.bridge.metrics import BridgeMetrics
from remote_executor.bridge.offsets import GmsOffsets
from remote_executor.bridge.pump import Pump
from remote_executor.bridge.sweep import Sweeper, SweepLimits
from remote_executor.errors import GmsAuthError, QueueError
from remote_executor.gms import GmsClient
from remote_executor.messages import parse_envelope
from remote_executor.models import Status, TaskResult
from remote_executor.queue.memory import MemoryQueue
from remote_executor.runrecord import RunRecord
from remote_executor.sandbox import gms_ui
from remote_executor.sandbox.gms import GmsStandIn

RECIPE = {"source": {"type": "sqlalchemy", "config": {"connect_uri": "sqlite://"}}}


@pytest.fixture
def gms() -> Iterator[GmsStandIn]:
    with GmsStandIn(token="t") as stand_in:
        yield stand_in


@pytest.fixture
def client(gms: GmsStandIn) -> GmsClient:
    return GmsClient(gms.url, "t", retry_seconds=0)


def changes_since(gms: GmsStandIn, start: int) -> list[dict[str, object]]:
    return [logged.change for logged in gms.change_log[start:]]


def test_only_inputs_of_served_executor_ids_are_forwarded(gms: GmsStandIn) -> None:
    remote, team_b = MemoryQueue(), MemoryQueue()
    forwarder = Forwarder({"remote": remote, "team-b": team_b})
    ours = gms_ui.create_source(gms, "ours", RECIPE, executor_id="remote")
    theirs = gms_ui.create_source(gms, "theirs", RECIPE, executor_id="team-z")
    start = len(gms.change_log)
    urn = gms_ui.execute(gms, ours)
    gms_ui.execute(gms, theirs)
    gms_ui.test_connection(gms, RECIPE)
    gms_ui.cancel(gms, urn, ours)

    outcomes = [forwarder.forward(change) for change in changes_since(gms, start)]

    assert [type(o).__name__ for o in outcomes] == ["Forwarded", "Skipped", "Skipped", "Skipped"]
    assert [o.executor_id for o in outcomes if isinstance(o, Skipped)] == [
        "team-z",
        "default",
        None,
    ]
    [lease] = remote.receive(10, 0, 30)
    envelope = parse_envelope(lease.body)
    assert envelope.urn == urn
    assert envelope.input == gms.aspect(urn, "dataHubExecutionRequestInput")
    assert len(team_b) == 0


def test_the_ui_injects_run_id_and_pipeline_name_and_flattens_extra_args(
    gms: GmsStandIn,
) -> None:
    source = gms_ui.create_source(
        gms, "pg", RECIPE, version="1.2.0", extra_args={"extra_pip_requirements": '["x"]'}
    )
    manual = gms_ui.execute(gms, source)
    scheduled = gms_ui.scheduled(gms, source)

    value = gms.aspect(manual, "dataHubExecutionRequestInput")
    assert value is not None
    recipe = json.loads(value["args"]["recipe"])
    assert (recipe["run_id"], recipe["pipeline_name"]) == (manual, source)
    assert value["args"]["version"] == "1.2.0"
    assert value["args"]["extra_pip_requirements"] == '["x"]'
    assert list(value["args"])[-1] == "debug_mode"
    assert value["actorUrn"] == "urn:li:corpuser:datahub"
    later = gms.aspect(scheduled, "dataHubExecutionRequestInput")
    assert later is not None
    assert later["source"]["type"] == "SCHEDULED_INGESTION_SOURCE"
    assert "actorUrn" not in later
    assert "run_id" not in json.loads(later["args"]["recipe"])


def test_an_input_too_large_for_sqs_becomes_the_truncated_stub(gms: GmsStandIn) -> None:
    queue = MemoryQueue()
    padding = json.dumps({"PAD": "p" * 300_000})
    source = gms_ui.create_source(gms, "big", RECIPE, extra_args={"extra_env_vars": padding})
    start = len(gms.change_log)
    urn = gms_ui.execute(gms, source)

    [outcome] = [Forwarder({"remote": queue}).forward(c) for c in changes_since(gms, start)]

    assert isinstance(outcome, Forwarded) and outcome.truncated
    [lease] = queue.receive(1, 0, 30)
    assert lease.body == truncated_message(urn)
    assert parse_envelope(lease.body).input is None


def test_restated_and_deleted_changes_are_not_forwarded() -> None:
    queue = MemoryQueue()
    change = {
        "entityType": "dataHubExecutionRequest",
        "entityUrn": "urn:li:dataHubExecutionRequest:x",
        "aspectName": "dataHubExecutionRequestInput",
        "aspect": {"value": json.dumps({"executorId": "remote"}), "contentType": "json"},
    }
    for change_type in ("RESTATE", "DELETE"):
        outcome = Forwarder({"remote": queue}).forward({**change, "changeType": change_type})
        assert outcome == Skipped(f"changeType {change_type}", "urn:li:dataHubExecutionRequest:x")
    assert len(queue) == 0


def test_avro_json_with_wrapped_unions_decodes_as_plain_json() -> None:
    value = {
        "entityType": "dataHubExecutionRequest",
        "entityUrn": "urn:li:dataHubExecutionRequest:x",
        "changeType": "UPSERT",
        "aspectName": {"string": "dataHubExecutionRequestInput"},
        "aspect": {
            "com.linkedin.pegasus2avro.mxe.GenericAspect": {
                "value": '{"executorId": "remote"}',
                "contentType": "application/json",
            }
        },
    }
    change = decode_change({"contentType": "application/json", "value": json.dumps(value)})
    assert change is not None
    assert change["aspectName"] == "dataHubExecutionRequestInput"
    assert change["aspect"] == {
        "value": '{"executorId": "remote"}',
        "contentType": "application/json",
    }
    assert decode_change({"value": "not json"}) is None
    assert decode_change({"value": '{"entityType": 1}'}) is None


class _FailingQueue(MemoryQueue):
    def __init__(self) -> None:
        super().__init__()
        self.fail = True

    def send(self, body: str) -> str:
        if self.fail:
            raise QueueError("send to memory://queue failed: throttled")
        return super().send(body)


def test_the_offset_is_committed_only_after_the_batch_was_queued(
    gms: GmsStandIn, client: GmsClient
) -> None:
    queue = _FailingQueue()
    offsets = GmsOffsets(client, "unit")
    pump = Pump(
        EventsApi(client, poll_seconds=0), offsets, Forwarder({"remote": queue}), BridgeMetrics()
    )
    pump.once()  # the first poll only learns where the log ends
    first = offsets.load()
    assert first is not None and pump.problem is None
    source = gms_ui.create_source(gms, "s", RECIPE)
    urn = gms_ui.execute(gms, source)

    with pytest.raises(QueueError):
        pump.once()
    assert offsets.load() == first
    assert pump.problem == "queue: send to memory://queue failed: throttled"
    assert pump.next_wait() == 1.0
    queue.fail = False
    pump.once()

    [lease] = queue.receive(1, 0, 30)
    assert parse_envelope(lease.body).urn == urn
    assert offsets.load() not in (None, first)
    assert pump.problem is None and pump.next_wait() == 0.0


def test_a_restarted_pump_resumes_from_the_committed_offset(
    gms: GmsStandIn, client: GmsClient
) -> None:
    queue = MemoryQueue()

    def pump() -> Pump:
        source = EventsApi(client, poll_seconds=0)
        return Pump(
            source, GmsOffsets(client, "resume"), Forwarder({"remote": queue}), BridgeMetrics()
        )

    pump().once()
    source = gms_ui.create_source(gms, "r", RECIPE)
    urns = [gms_ui.execute(gms, source) for _ in range(3)]
    again = pump()  # a new process: nothing in memory, the offset from GMS
    again.once()

    assert sorted(parse_envelope(m.body).urn for m in queue.receive(10, 0, 30)) == sorted(urns)


def test_a_token_without_the_events_privilege_is_told_what_it_needs(gms: GmsStandIn) -> None:
    api = EventsApi(GmsClient(gms.url, "wrong", retry_seconds=0), poll_seconds=0)
    with pytest.raises(GmsAuthError) as raised:
        api.poll(None)
    assert str(raised.value).startswith(
        "GMS refused to serve MetadataChangeLog_Versioned_v1 on its Events API (401): the "
        "token needs the privilege GET_METADATA_CHANGE_LOG_EVENTS"
    )


def _running(gms: GmsStandIn, urn: str, beat_ms: int) -> None:
    record = RunRecord(1, 3, "remote", "remote@host:1:abc", beat_ms)
    report = f"~~~~ RUN_INGEST ~~~~\n{record.line()}\nlog so far"
    result = TaskResult(status=Status.RUNNING, report=report, start_time_ms=beat_ms - 1000)
    gms.put_aspect(urn, "dataHubExecutionRequestResult", result.to_aspect())


def test_the_sweeper_aborts_stale_runs_and_cancels_requests_nobody_started(
    gms: GmsStandIn, client: GmsClient
) -> None:
    now = int(time.time() * 1000)
    source = gms_ui.create_source(gms, "sw", RECIPE)
    stale, fresh, pending, done = (gms_ui.execute(gms, source) for _ in range(4))
    other = gms_ui.execute(gms, gms_ui.create_source(gms, "o", RECIPE, executor_id="other"))
    _running(gms, stale, now - 120_000)
    _running(gms, fresh, now - 1_000)
    _running(gms, other, now - 120_000)
    gms.put_aspect(done, "dataHubExecutionRequestResult", {"status": "SUCCESS", "startTimeMs": now})
    old_input = gms.aspect(pending, "dataHubExecutionRequestInput")
    assert old_input is not None
    gms.put_aspect(
        pending, "dataHubExecutionRequestInput", {**old_input, "requestedAt": now - 90_000}
    )
    metrics = BridgeMetrics()
    sweeper = Sweeper(client, {"remote"}, SweepLimits(60, 60), metrics)

    assert sweeper.once() == {"ABORTED": 1, "CANCELLED": 1}

    aborted = gms.last_result(stale)
    assert aborted is not None and aborted["status"] == "ABORTED"
    assert str(aborted["report"]).startswith(
        "Aborted by the bridge: no heartbeat from worker remote (instance remote@host:1:abc, "
        "run 1) since "
    )
    assert ", 2 min ago, longer than EXECUTOR_STALE_RUNNING_SECONDS=60" in aborted["report"]
    assert aborted["report"].endswith("log so far")
    cancelled = gms.last_result(pending)
    assert cancelled is not None and cancelled["status"] == "CANCELLED"
    assert (
        "no worker started this request in 1 min (EXECUTOR_PENDING_TIMEOUT_SECONDS=60)"
        in (cancelled["report"])
    )
    for untouched in (fresh, other):
        assert gms.last_result(untouched)["status"] == "RUNNING"  # type: ignore[index]
    assert gms.last_result(done)["status"] == "SUCCESS"  # type: ignore[index]
    assert sweeper.once() == {"ABORTED": 0, "CANCELLED": 0}
    assert 'executor_bridge_swept_total{status="ABORTED"} 1.0' in metrics.render().decode()
