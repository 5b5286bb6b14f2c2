"""The bridge as a datahub-actions action in the real ``datahub actions`` CLI, reading the
GMS stand-in's Events API with the framework's own ``datahub-cloud`` source, forwarding to
moto's SQS, and a worker running the real datahub CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from remote_executor.sandbox import gms_ui
from tests.integration.conftest import TOKEN
from tests.integration.support import silent_listener
from tests.integration.test_bridge import demo_source, hanging_source, runs_of, wait_result

pytestmark = pytest.mark.integration
pytest.importorskip(
    "datahub_actions", reason="needs acryl-datahub-actions: pip install -e '.[actions]'"
)
DATAHUB = Path(sys.executable).with_name("datahub")


def pipeline(gms_url: str, queue_url: str, name: str, **action: object) -> dict[str, object]:
    """The pipeline docs/deploy-bridge.md shows, on the Events API; ``action`` adds to the
    action's config."""
    return {
        "name": name,
        "datahub": {"server": gms_url, "token": TOKEN},
        "source": {
            "type": "datahub-cloud",
            "config": {"topics": "MetadataChangeLog_Versioned_v1", "lookback_days": 1},
        },
        "filter": {
            "event_type": "MetadataChangeLogEvent_v1",
            "event": {"entityType": "dataHubExecutionRequest", "changeType": "UPSERT"},
        },
        "action": {
            "type": "remote-executor-bridge",
            "config": {"queues": {"remote": queue_url}, **action},
        },
        "options": {"failure_mode": "THROW"},
    }


class ActionsProcess:
    def __init__(self, sandbox, config: Path, log_dir: Path) -> None:
        self._sandbox, self._config, self._log_dir = sandbox, config, log_dir
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        polls_before = self._sandbox.gms.event_polls
        with (self._log_dir / f"actions-{self.starts}.log").open("wb") as out:
            self.process = subprocess.Popen(
                [str(DATAHUB), "actions", "-c", str(self._config)],
                env={**os.environ, **self._sandbox.env()},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 90
        while self._sandbox.gms.event_polls < polls_before + 2:  # GmsStandIn.event_polls
            assert self.process.poll() is None, self.log
            assert time.monotonic() < deadline, f"no poll of the Events API:\n{self.log}"
            time.sleep(0.2)

    @property
    def log(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self._log_dir.glob("*.log")))

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()


@pytest.fixture
def actions(sandbox, tmp_path: Path) -> Iterator:
    started: list[ActionsProcess] = []

    def start(queue_url: str, **action: object) -> ActionsProcess:
        config = tmp_path / "pipeline.yml"
        name = f"it-bridge-{uuid.uuid4().hex[:8]}"
        config.write_text(yaml.safe_dump(pipeline(sandbox.gms.url, queue_url, name, **action)))
        process = ActionsProcess(sandbox, config, tmp_path)
        process.start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def test_the_actions_plugin_forwards_ours_survives_a_kill_and_runs_each_once(
    sandbox, start_worker, actions, demo_db
):
    running = start_worker()
    gms = sandbox.gms
    bridge = actions(running.queue.url)
    source = demo_source(gms, demo_db)
    elsewhere = demo_source(gms, demo_db, executor_id="team-z")
    before = [gms_ui.execute(gms, source), gms_ui.scheduled(gms, source)]
    not_ours = gms_ui.execute(gms, elsewhere)
    for urn in before:
        assert wait_result(gms, urn)["status"] == "SUCCESS", bridge.log

    bridge.kill()  # the datahub-cloud source commits its offset only when it closes
    while_down = [gms_ui.execute(gms, source) for _ in range(2)]
    bridge.start()  # replays from the last commit, or a day back: duplicates, never a loss

    for urn in while_down:
        assert wait_result(gms, urn)["status"] == "SUCCESS", bridge.log
    assert running.queue_is_empty(timeout_seconds=30)
    for urn in before + while_down:
        assert len(runs_of(gms, urn)) == 1, gms.results(urn)
        assert [r["status"] for r in gms.results(urn)].count("SUCCESS") == 1
    assert gms.last_result(not_ours) is None
    forwarded = [line for line in bridge.log.splitlines() if "bridge.forwarded" in line]
    assert len(forwarded) >= 4
    assert all(not_ours not in line for line in forwarded)


def test_through_the_plugin_an_oversized_input_goes_as_the_stub_cancel_stops_and_runs_lists(
    sandbox, start_worker, actions, demo_db
):
    import json

    from tests.integration.support import RECIPES
    from tests.integration.test_cli import executor

    running = start_worker(signal_poll_seconds=0.5)
    gms = sandbox.gms
    bridge = actions(running.queue.url, max_message_bytes=2048)
    padding = {"DEMO_DB": str(demo_db), "PADDING": "p" * 4000}
    big = demo_source(gms, demo_db, extra={"extra_env_vars": json.dumps(padding)})
    oversized = gms_ui.execute(gms, big)
    assert wait_result(gms, oversized)["status"] == "SUCCESS", bridge.log
    assert any(oversized in line and "truncated=True" in line for line in bridge.log.splitlines())

    with silent_listener() as host_port:
        hanging = hanging_source(gms, host_port)
        urn = gms_ui.execute(gms, hanging)
        assert gms.wait_for_status(urn, {"RUNNING"}, 120) is not None, bridge.log
        gms_ui.cancel(gms, urn, hanging)
        assert wait_result(gms, urn, 60)["status"] == "CANCELLED"

    source = f"urn:li:dataHubIngestionSource:it-{uuid.uuid4().hex[:8]}"
    cli_env = sandbox.env()
    submitted = executor(
        "submit",
        str(RECIPES / "demo-sqlite.yml"),
        "--source-urn",
        source,
        "--via-bridge",
        "--env",
        f"DEMO_DB={demo_db}",
        env=cli_env,
    )
    assert submitted.returncode == 0, submitted.stderr
    submitted_urn = submitted.stdout.strip()
    assert wait_result(gms, submitted_urn)["status"] == "SUCCESS", bridge.log
    listed = executor("runs", "--source", source, env=cli_env)
    assert listed.stdout.splitlines()[1].split()[-1] == submitted_urn
    assert running.queue_is_empty(timeout_seconds=30)
