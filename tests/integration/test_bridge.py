"""From "Execute" in the UI to a run in the network, with every part real: the UI's writes
imitated in the GMS stand-in, ``executor bridge`` reading its Events API in a process of
its own, moto's SQS, and a worker running the real datahub CLI."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from remote_executor.models import TERMINAL_STATUSES
from remote_executor.sandbox import Sandbox, gms_ui
from remote_executor.sandbox.gms import GmsStandIn
from tests.integration.bridge_support import BridgeProcess
from tests.integration.support import RECIPES, processes_of, silent_listener

pytestmark = pytest.mark.integration
StartBridge = Callable[..., BridgeProcess]


@pytest.fixture
def start_bridge(sandbox: Sandbox, tmp_path: Path) -> Iterator[StartBridge]:
    """Start ``executor bridge`` processes (ready when returned); stopped at teardown."""
    started: list[BridgeProcess] = []

    def start(queues: dict[str, str], **settings: str) -> BridgeProcess:
        settings.setdefault("EXECUTOR_BRIDGE_CONSUMER_ID", f"it-bridge-{uuid.uuid4().hex[:8]}")
        log_dir = tmp_path / f"bridge-{len(started)}"
        log_dir.mkdir()
        bridge = BridgeProcess(sandbox, log_dir, queues, settings).start()
        started.append(bridge)
        return bridge

    yield start
    for bridge in started:
        assert bridge.stop() == 0, bridge.log


def demo_source(gms: GmsStandIn, demo_db: Path, executor_id: str | None = "remote", **kw) -> str:
    recipe = yaml.safe_load((RECIPES / "demo-sqlite.yml").read_text())
    env = {"extra_env_vars": json.dumps({"DEMO_DB": str(demo_db)}), **kw.pop("extra", {})}
    return gms_ui.create_source(
        gms, f"it-{uuid.uuid4().hex[:8]}", recipe, executor_id=executor_id, extra_args=env, **kw
    )


def wait_result(gms: GmsStandIn, urn: str, timeout: float = 180) -> dict[str, object]:
    result = gms.wait_for_status(urn, TERMINAL_STATUSES, timeout)
    assert result is not None, f"no terminal result for {urn}"
    return result


def runs_of(gms: GmsStandIn, urn: str) -> set[str]:
    """The run record lines of every RUNNING result: one per start of the CLI."""
    lines = set()
    for result in gms.results(urn):
        if result["status"] == "RUNNING":
            lines.add(str(result["report"]).split("\n")[1].split(", instance")[0])
    return lines


def test_ui_execute_and_scheduled_runs_reach_the_worker_through_the_bridge(
    sandbox, start_worker, start_bridge, demo_db
):
    running = start_worker()
    bridge = start_bridge({"remote": running.queue.url})
    gms = sandbox.gms
    source = demo_source(gms, demo_db)
    elsewhere = demo_source(gms, demo_db, executor_id="team-z")
    unassigned = demo_source(gms, demo_db, executor_id="default")

    manual = gms_ui.execute(gms, source)
    scheduled = gms_ui.scheduled(gms, source)
    not_ours = [gms_ui.execute(gms, elsewhere), gms_ui.execute(gms, unassigned)]
    test_connection = gms_ui.test_connection(gms, {"source": {"type": "sqlalchemy"}})

    for urn in (manual, scheduled):
        result = wait_result(gms, urn)
        assert result["status"] == "SUCCESS", result["report"]
        assert len(runs_of(gms, urn)) == 1
    assert running.queue_is_empty()
    for urn in (*not_ours, test_connection):
        assert gms.last_result(urn) is None
    assert bridge.metric("executor_bridge_forwarded_total") == 2
    assert bridge.metric("executor_bridge_skipped_other_executor_total") == 3
    assert gms.rejected == []


def test_a_bridge_killed_mid_stream_loses_nothing_and_runs_nothing_twice(
    sandbox, start_worker, start_bridge, demo_db
):
    running = start_worker()
    bridge = start_bridge({"remote": running.queue.url})
    gms = sandbox.gms
    source = demo_source(gms, demo_db)
    first = [gms_ui.execute(gms, source) for _ in range(3)]
    bridge.kill()  # before, during or after it forwarded them: it committed nothing since
    while_down = [gms_ui.execute(gms, source) for _ in range(3)]
    bridge.start()

    for urn in first + while_down:
        assert wait_result(gms, urn)["status"] == "SUCCESS"
    # A replay of the whole stream (a new consumer reading a day back) queues every request
    # again: each copy is acknowledged without running, as the result in GMS is terminal.
    replay = start_bridge({"remote": running.queue.url}, EXECUTOR_BRIDGE_LOOKBACK_DAYS="1")
    deadline = time.monotonic() + 30
    while replay.metric("executor_bridge_forwarded_total") < 6 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert replay.metric("executor_bridge_forwarded_total") >= 6
    assert running.queue_is_empty(timeout_seconds=30)
    for urn in first + while_down:
        assert len(runs_of(gms, urn)) == 1, gms.results(urn)
        assert [r["status"] for r in gms.results(urn)].count("SUCCESS") == 1
    assert gms.rejected == []


def test_an_input_too_large_for_the_queue_goes_as_the_stub_and_runs_from_gms(
    sandbox, start_worker, start_bridge, demo_db
):
    running = start_worker()
    bridge = start_bridge({"remote": running.queue.url}, EXECUTOR_SQS_MAX_MESSAGE_BYTES="2048")
    gms = sandbox.gms
    padding = {"PADDING": "p" * 4000}
    source = demo_source(
        gms,
        demo_db,
        extra={"extra_env_vars": json.dumps({"DEMO_DB": str(demo_db), **padding})},
    )
    urn = gms_ui.execute(gms, source)

    assert wait_result(gms, urn)["status"] == "SUCCESS"
    assert (
        bridge.metric('executor_bridge_forwarded_total{executor_id="remote",truncated="true"}') == 1
    )
    [forwarded] = [e for e in bridge.events("bridge.forwarded") if e["urn"] == urn]
    assert forwarded["truncated"] is True


def test_cancel_in_the_ui_stops_the_run(sandbox, start_worker, start_bridge):
    running = start_worker(signal_poll_seconds=0.5)
    start_bridge({"remote": running.queue.url})
    gms = sandbox.gms
    with silent_listener() as host_port:
        source = hanging_source(gms, host_port)
        urn = gms_ui.execute(gms, source)
        assert gms.wait_for_status(urn, {"RUNNING"}, 120) is not None
        gms_ui.cancel(gms, urn, source)
        result = wait_result(gms, urn, 60)
    assert result["status"] == "CANCELLED", result["report"]
    assert running.queue_is_empty()


def test_a_worker_killed_for_good_is_swept_to_aborted_and_an_unread_queue_to_cancelled(
    sandbox, start_bridge, tmp_path
):
    gms = sandbox.gms
    worker_queue = sandbox.aws.create_queue(f"it-{uuid.uuid4().hex[:8]}")
    unread_queue = sandbox.aws.create_queue(f"it-{uuid.uuid4().hex[:8]}")
    start_bridge(
        {"remote": worker_queue, "nobody": unread_queue},
        EXECUTOR_STALE_RUNNING_SECONDS="6",
        EXECUTOR_PENDING_TIMEOUT_SECONDS="4",
        EXECUTOR_SWEEP_INTERVAL_SECONDS="1",
    )
    worker = sandbox.start_worker(
        tmp_path / "tasks",
        tmp_path / "worker.log",
        worker_queue,
        EXECUTOR_REPORT_INTERVAL_SECONDS="1",
    )
    try:
        with silent_listener() as host_port:
            source = hanging_source(gms, host_port)
            lonely = hanging_source(gms, host_port, executor_id="nobody")
            urn = gms_ui.execute(gms, source)
            never_started = gms_ui.execute(gms, lonely)
            assert gms.wait_for_status(urn, {"RUNNING"}, 120) is not None
            worker.kill()
            worker.wait(10)
            for pid in processes_of(urn.rsplit(":", 1)[1]):  # its CLI, in a session of its own
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            aborted = wait_result(gms, urn, 60)
            cancelled = wait_result(gms, never_started, 60)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert aborted["status"] == "ABORTED", aborted["report"]
    assert "Aborted by the bridge: no heartbeat from worker remote" in str(aborted["report"])
    assert "longer than EXECUTOR_STALE_RUNNING_SECONDS=6" in str(aborted["report"])
    assert cancelled["status"] == "CANCELLED"
    assert str(cancelled["report"]).startswith(
        "Cancelled by the bridge: no worker started this request in 4 s "
        "(EXECUTOR_PENDING_TIMEOUT_SECONDS=4)"
    )


def hanging_source(gms: GmsStandIn, host_port: str, **source: Any) -> str:
    """A PostgreSQL source whose database (``silent_listener``) never answers: its runs hang
    until they are stopped."""
    recipe = yaml.safe_load((RECIPES / "postgres.yml").read_text())
    env = {"PG_HOST_PORT": host_port, "PG_DATABASE": "shop", "PG_PASSWORD": "unused"}
    extra_args = {"extra_env_vars": json.dumps(env)}
    return gms_ui.create_source(
        gms, f"it-{uuid.uuid4().hex[:8]}", recipe, extra_args=extra_args, **source
    )


def test_submit_with_a_source_is_listed_by_runs_and_its_report_printed_by_logs(
    sandbox, start_worker, start_bridge, demo_db, tmp_path
):
    from tests.integration.test_cli import executor

    running = start_worker()
    bridge = start_bridge({"remote": running.queue.url})
    env = {**sandbox.env(), "EXECUTOR_QUEUE_URL": running.queue.url}
    source = f"urn:li:dataHubIngestionSource:it-{uuid.uuid4().hex[:8]}"
    recipe = str(RECIPES / "demo-sqlite.yml")
    common = ("--source-urn", source, "--env", f"DEMO_DB={demo_db}")

    direct = executor("submit", recipe, *common, "--actor", "urn:li:corpuser:ann", env=env)
    via_bridge = executor("submit", recipe, *common, "--via-bridge", env=env)
    assert direct.returncode == via_bridge.returncode == 0, direct.stderr + via_bridge.stderr
    urns = [direct.stdout.strip(), via_bridge.stdout.strip()]
    written = sandbox.gms.aspect(urns[0], "dataHubExecutionRequestInput")
    assert written is not None
    assert (written["actorUrn"], written["source"]["ingestionSource"]) == (
        "urn:li:corpuser:ann",
        source,
    )
    assert isinstance(written["requestedAt"], int)
    for urn in urns:
        assert wait_result(sandbox.gms, urn)["status"] == "SUCCESS"
        assert len(runs_of(sandbox.gms, urn)) == 1
    # The bridge forwarded both writes; only the first was also queued by submit itself.
    assert bridge.metric("executor_bridge_forwarded_total") == 2

    listed = executor("runs", "--source", source, env=env)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == [
        "REQUESTED",
        "(UTC)",
        "STATUS",
        "TASK",
        "EXECUTOR",
        "TRIGGER",
        "DURATION",
        "URN",
    ]
    assert [line.split()[-1] for line in lines[1:]] == urns[::-1]
    assert all(" SUCCESS " in line and " MANUAL " in line for line in lines[1:])
    shown = executor("logs", urns[0], env=env)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"{urns[0]}: SUCCESS\n~~~~ RUN_INGEST on remote-executor")
    missing = executor("logs", "never-written", env=env)
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        "Error: no report for urn:li:dataHubExecutionRequest:never-written: "
        "GMS holds no such request"
    )
