"""Benchmark 1, dispatch latency: from SendMessage to GMS accepting RUNNING.

Sparse traffic, the way requests reach an executor: one message at a time after a
random pause, so that each one finds the consumer in a long poll. The same pauses are
used for every system in the run:

- the floor: a bare boto3 long-poll loop woken by the send (bench/floor_receiver.py);
- this executor: ``executor run`` with the trivial child, until GMS accepted RUNNING
  (after reading the request's result and signal in GMS, in one call, and extending its
  lease, as every task does), and again with every GMS call 50 ms slower, as a GMS across
  a network; for both, the GMS calls between each receipt and RUNNING, from the
  stand-in's log of what it served;
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
from remote_executor.sandbox.gms import ServedRequest

CELERY_BEST = {"wait_time_seconds": 20, "polling_interval": 0}
GMS_LATENCY_SECONDS = 0.05
SLOW_GMS = f"remote-executor, GMS +{GMS_LATENCY_SECONDS * 1000:.0f} ms"
# Before a task runs, GMS is needed twice: one read of the request's state, and RUNNING.
GMS_CALLS_GOAL = 2


@dataclass
class Run:
    """The executor's figures, one per task: seconds from SendMessage to RUNNING and to its
    receipt, and the GMS calls between its receipt and RUNNING."""

    to_running: list[float]
    to_receipt: list[float]
    gms_calls: list[int]


def run(box: Sandbox, directory: Path, tasks: int = 200) -> Result:
    """All four systems on the same pauses; latencies in seconds."""
    schedule = gaps(tasks)
    normal = ours(box, directory / "ours", schedule)
    slow = ours_with_slow_gms(box, directory / "ours-slow-gms", schedule)
    latencies = {
        "floor: bare boto3 long poll": floor(box, schedule),
        "remote-executor": normal.to_running,
        "remote-executor, to its receipt only": normal.to_receipt,
        SLOW_GMS: slow.to_running,
        "Celery, wait_time_seconds=20, polling_interval=0": celery_dispatch(
            box.aws.endpoint_url, dict(CELERY_BEST), schedule, directory / "celery-best"
        ),
        "Celery, kombu's defaults": celery_dispatch(
            box.aws.endpoint_url, {}, schedule, directory / "celery-defaults"
        ),
    }
    calls = {"remote-executor": normal.gms_calls, SLOW_GMS: slow.gms_calls}
    base = percentile(latencies["floor: bare boto3 long poll"], 50)
    rows = []
    summary: dict[str, dict[str, Any]] = {}
    for system, values in latencies.items():
        p50, p95, p99 = (percentile(values, pct) for pct in (50, 95, 99))
        summary[system] = {"p50": p50, "p95": p95, "p99": p99, "samples": values}
        if system in calls:
            summary[system]["gms_calls"] = calls[system]
        ratio = f"{p50 / base:.2f}"
        rows.append(
            [system, len(values), ms(p50), ms(p95), ms(p99), ratio, gms_cell(calls, system)]
        )
    mine = summary["remote-executor"]
    best = summary["Celery, wait_time_seconds=20, polling_interval=0"]
    typical_calls = int(percentile(mine["gms_calls"], 50))
    headers = ["system", "tasks", "p50 ms", "p95 ms", "p99 ms", "p50 / floor", "GMS calls"]
    return Result(
        name="dispatch",
        title=f"1. Dispatch latency, SendMessage to RUNNING ({tasks} tasks, sparse)",
        table=table(headers, rows),
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
            (
                f"at most {GMS_CALLS_GOAL} GMS calls from receipt to RUNNING "
                f"({typical_calls}, the median)",
                typical_calls <= GMS_CALLS_GOAL,
            ),
        ],
    )


def gms_cell(calls: dict[str, list[int]], system: str) -> str:
    """The median of the GMS calls per task, and their range if they were not all the same:
    a readiness check of the worker's (every 30 s) can fall between a receipt and RUNNING."""
    counts = calls.get(system)
    if not counts:
        return "-"
    median = int(percentile(counts, 50))
    low, high = min(counts), max(counts)
    return str(median) if low == high else f"{median} ({low} to {high})"


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


def ours_with_slow_gms(box: Sandbox, directory: Path, schedule: list[float]) -> Run:
    """``ours`` with GMS_LATENCY_SECONDS added to every GMS call, as across a network."""
    box.gms.latency_seconds = GMS_LATENCY_SECONDS
    try:
        return ours(box, directory, schedule)
    finally:
        box.gms.latency_seconds = 0.0


def ours(box: Sandbox, directory: Path, schedule: list[float]) -> Run:
    """Send requests to ``executor run``; time until GMS accepted each one's RUNNING, and
    until the worker's receive returned it (its log's ``message received``); count the
    GMS calls in between from the stand-in's log of what it served."""
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
    served = box.gms.served
    figures = Run([], [], [])
    for request_id in timed:
        message_id, sent = submitter.sent[request_id]
        started = accepted(box, request_id, {"RUNNING"})
        assert started is not None
        figures.to_running.append(started - sent)
        figures.to_receipt.append(received[message_id] - sent)
        figures.gms_calls.append(calls_between(served, received[message_id], started))
    return figures


def calls_between(served: list[ServedRequest], since: float, until: float) -> int:
    """GMS calls the stand-in handled in [since, until]: RUNNING's own is the last."""
    return sum(1 for call in served if since <= call.at <= until)
