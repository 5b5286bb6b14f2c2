"""Benchmark: from "Execute" in the UI to RUNNING, through each form of the bridge.

A request is written to the GMS stand-in the way the UI's resolver writes it
(sandbox/gms_ui.execute), and the clock stops when GMS accepts the worker's first RUNNING
result for it: the whole loop a user waits on before the UI shows the run as started.
Three ways, each with its own worker (``executor run`` on the trivial child) and queue:

- floor: ``executor submit``'s path, the input written to GMS and the message sent to SQS
  by the producer itself (no bridge at all);
- ``executor bridge``: a process of its own, long-polling GMS's Events API;
- the datahub-actions action: the real ``datahub actions`` CLI with the ``datahub-cloud``
  source on the same Events API (skipped when acryl-datahub-actions is not installed).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from statistics import median

import yaml

from bench.common import (
    TOKEN,
    Result,
    accepted,
    fresh_queue,
    gaps,
    ms,
    percentile,
    start_worker,
    table,
    trivial_recipe,
    wait_until,
)
from remote_executor.messages import message_for
from remote_executor.sandbox import Sandbox, gms_ui

FLOOR = "floor: the producer writes GMS and sends to SQS"
BRIDGE = "executor bridge (Events API)"
PLUGIN = "datahub actions + remote-executor-bridge (datahub-cloud source)"


def run(box: Sandbox, directory: Path, requests: int = 50) -> Result:
    directory.mkdir(parents=True, exist_ok=True)
    latencies: dict[str, list[float]] = {}
    ways = [FLOOR, BRIDGE] + ([PLUGIN] if importlib.util.find_spec("datahub_actions") else [])
    for way in ways:
        queue = fresh_queue(box, "bridge")
        worker = start_worker(box, queue, directory / way.split()[0].strip(":"))
        forwarder = _start_forwarder(box, way, queue, directory)
        try:
            latencies[way] = _measure(box, way, queue, requests)
        finally:
            if forwarder is not None:
                forwarder.terminate()
                forwarder.wait(30)
            worker.stop()
    rows = [
        (way, len(values), ms(median(values)), ms(percentile(values, 90)), ms(max(values)))
        for way, values in latencies.items()
    ]
    floor_p50 = median(latencies[FLOOR])
    bridge_p50 = median(latencies[BRIDGE])
    added = bridge_p50 - floor_p50
    goals = [
        (f"executor bridge adds under 500 ms to the floor's p50 (adds {ms(added)} ms)", added < 0.5)
    ]
    if PLUGIN in latencies:
        plugin_p50 = median(latencies[PLUGIN])
        goals.append(
            (
                f"executor bridge's p50 is within 50 ms of the actions plugin's "
                f"({ms(bridge_p50)} vs {ms(plugin_p50)} ms)",
                bridge_p50 - plugin_p50 <= 0.05,
            )
        )
    return Result(
        name="bridge",
        title=f"UI write to RUNNING, {requests} requests one at a time",
        table=table(("path", "requests", "p50 ms", "p90 ms", "max ms"), rows),
        data={way: values for way, values in latencies.items()},
        goals=goals,
    )


def _measure(box: Sandbox, way: str, queue: str, requests: int) -> list[float]:
    recipe = yaml.safe_load(trivial_recipe())
    source = gms_ui.create_source(box.gms, f"bench-{uuid.uuid4().hex[:8]}", recipe)
    sqs = box.aws.client("sqs")
    values = []
    for pause in gaps(requests):
        time.sleep(pause)
        written = time.time()
        urn = gms_ui.execute(box.gms, source)
        if way == FLOOR:
            value = box.gms.aspect(urn, "dataHubExecutionRequestInput")
            assert value is not None
            sqs.send_message(QueueUrl=queue, MessageBody=message_for(urn, value))
        request_id = urn.rsplit(":", 1)[1]
        started = _wait_accepted(box, request_id, {"RUNNING"})
        values.append(started - written)
        _wait_accepted(box, request_id, {"SUCCESS", "FAILURE"})
    return values


def _wait_accepted(box: Sandbox, request_id: str, statuses: set[str]) -> float:
    """When GMS accepted one of statuses for the request, waiting up to a minute for it."""
    wait_until(lambda: accepted(box, request_id, statuses), 60, f"{statuses} of {request_id}")
    at = accepted(box, request_id, statuses)
    assert at is not None
    return at


def _start_forwarder(
    box: Sandbox, way: str, queue: str, directory: Path
) -> subprocess.Popen[bytes] | None:
    if way == FLOOR:
        return None
    polls = box.gms.event_polls
    log_path = directory / f"{way.split(maxsplit=1)[0]}-forwarder.log"
    if way == BRIDGE:
        proc = box.start_bridge(
            log_path,
            {"remote": queue},
            EXECUTOR_BRIDGE_CONSUMER_ID=f"bench-{uuid.uuid4().hex[:8]}",
            EXECUTOR_SWEEP_INTERVAL_SECONDS="0",
        )
    else:
        pipeline = {
            "name": f"bench-{uuid.uuid4().hex[:8]}",
            "datahub": {"server": box.gms.url, "token": TOKEN},
            "source": {
                "type": "datahub-cloud",
                "config": {"topics": "MetadataChangeLog_Versioned_v1"},
            },
            "filter": {"event_type": "MetadataChangeLogEvent_v1"},
            "action": {"type": "remote-executor-bridge", "config": {"queues": {"remote": queue}}},
            "options": {"failure_mode": "THROW"},
        }
        config = directory / "pipeline.yml"
        config.write_text(yaml.safe_dump(pipeline))
        with log_path.open("wb") as out:
            proc = subprocess.Popen(
                [str(Path(sys.executable).with_name("datahub")), "actions", "-c", str(config)],
                env={**os.environ, **box.env()},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
    # Ready once it polled twice: its first poll, which learns the end of the log, is done.
    wait_until(
        lambda: box.gms.event_polls >= polls + 2 or proc.poll() is not None,
        90,
        f"the first poll of {way}",
        interval=0.05,
    )
    if proc.poll() is not None:
        raise RuntimeError(f"{way} exited {proc.returncode}: {log_path.read_text()[-2000:]}")
    return proc
