"""Benchmark 1, dispatch latency: from SendMessage to GMS accepting RUNNING.

Sparse traffic, the way requests reach an executor: one message at a time after a
random pause, so that each one finds the consumer in a long poll. The same pauses are
used for every system in the run:

- the floor: a bare boto3 long-poll loop woken by the send (bench/floor_receiver.py);
- this executor: ``executor run`` with the trivial child, until GMS accepted RUNNING
  (after reading the request's result and signal in GMS and extending its lease, as every
  task does);
- Celery on kombu's SQS transport, ``apply_async`` to the task body starting, in its
  best configuration for latency and at kombu's defaults (bench/celery_peer.py).
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.celery_peer import celery_dispatch
from bench.common import (
    BENCH,
    Result,
    Submitter,
    accepted,
    fresh_queue,
    gaps,
    ms,
    percentile,
    start_worker,
    table,
    trivial_recipe,
)
from remote_executor.models import request_urn
from remote_executor.sandbox import Sandbox

CELERY_BEST = {"wait_time_seconds": 20, "polling_interval": 0}


def run(box: Sandbox, directory: Path, tasks: int = 200) -> Result:
    """All four systems on the same pauses; latencies in seconds."""
    schedule = gaps(tasks)
    to_running, to_receipt = ours(box, directory / "ours", schedule)
    latencies = {
        "floor: bare boto3 long poll": floor(box, schedule),
        "remote-executor": to_running,
        "remote-executor, to its receipt only": to_receipt,
        "Celery, wait_time_seconds=20, polling_interval=0": celery_dispatch(
            box.aws.endpoint_url, dict(CELERY_BEST), schedule, directory / "celery-best"
        ),
        "Celery, kombu's defaults": celery_dispatch(
            box.aws.endpoint_url, {}, schedule, directory / "celery-defaults"
        ),
    }
    base = percentile(latencies["floor: bare boto3 long poll"], 50)
    rows = []
    summary = {}
    for system, values in latencies.items():
        p50, p95, p99 = (percentile(values, pct) for pct in (50, 95, 99))
        summary[system] = {"p50": p50, "p95": p95, "p99": p99, "samples": values}
        rows.append([system, len(values), ms(p50), ms(p95), ms(p99), f"{p50 / base:.2f}"])
    mine = summary["remote-executor"]
    best = summary["Celery, wait_time_seconds=20, polling_interval=0"]
    return Result(
        name="dispatch",
        title=f"1. Dispatch latency, SendMessage to RUNNING ({tasks} tasks, sparse)",
        table=table(["system", "tasks", "p50 ms", "p95 ms", "p99 ms", "p50 / floor"], rows),
        data=summary,
        goals=[
            (
                f"p50 within 1.5 x the floor ({ms(mine['p50'])} ms vs {ms(base)} ms)",
                mine["p50"] <= 1.5 * base,
            ),
            (
                f"p95 no worse than Celery's best ({ms(mine['p95'])} ms vs {ms(best['p95'])} ms)",
                mine["p95"] <= best["p95"],
            ),
        ],
    )


def floor(box: Sandbox, schedule: list[float]) -> list[float]:
    """Send to a bare long-poll loop in another process; time until its receive returned."""
    url = fresh_queue(box, "floor")
    sqs = box.aws.client("sqs")
    receiver = subprocess.Popen(
        [sys.executable, "-m", "bench.floor_receiver", url],
        env={**os.environ, **box.aws.env()},
        stdout=subprocess.PIPE,
        text=True,
        cwd=BENCH.parent,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert receiver.stdout is not None
    threading.Thread(
        target=lambda: [lines.put(line) for line in receiver.stdout], daemon=True
    ).start()
    try:
        lines.get(timeout=60)  # ready
        latencies = []
        for n, pause in enumerate([0.5, *schedule]):  # the first one warms the loop up
            threading.Event().wait(pause)
            sent = time.time()
            sqs.send_message(QueueUrl=url, MessageBody=str(n))
            body, received = lines.get(timeout=60).split()
            assert body == str(n), f"floor receiver got {body}, expected {n}"
            if n:
                latencies.append(float(received) - sent)
        return latencies
    finally:
        receiver.terminate()
        receiver.wait()


def ours(box: Sandbox, directory: Path, schedule: list[float]) -> tuple[list[float], list[float]]:
    """Send requests to ``executor run``; time until GMS accepted each one's RUNNING, and
    until the worker's receive returned it (its log's ``message received``)."""
    url = fresh_queue(box, "dispatch")
    worker = start_worker(box, url, directory)
    submitter = Submitter(box, url)
    timed: list[str] = []
    try:
        for n, pause in enumerate([0.5, *schedule]):  # the first pays one-off costs
            threading.Event().wait(pause)
            request_id = submitter.submit(trivial_recipe())
            urn = request_urn(request_id)
            running = box.gms.wait_for_status(urn, {"RUNNING"}, 60)
            if running is None:
                raise TimeoutError(f"no RUNNING for {urn}; worker log:\n{worker.tail()}")
            finished = box.gms.wait_for_status(urn, {"SUCCESS", "FAILURE"}, 60)
            if finished is None or finished["status"] != "SUCCESS":
                raise RuntimeError(f"{urn} did not succeed: {finished}\n{worker.tail()}")
            if n:
                timed.append(request_id)
    finally:
        worker.stop()
    received = worker.received_at()
    latencies, receipts = [], []
    for request_id in timed:
        message_id, sent = submitter.sent[request_id]
        started = accepted(box, request_id, {"RUNNING"})
        assert started is not None
        latencies.append(started - sent)
        receipts.append(received[message_id] - sent)
    return latencies, receipts
