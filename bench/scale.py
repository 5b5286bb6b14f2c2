"""Benchmark 6, scale: a burst of trivial tasks on 1, 2 and 4 worker processes.

All messages are sent at once (SendMessageBatch, ten at a time) to a fresh queue that
the workers, already started with 8 slots each, share. Per task:

- queue wait: SendMessage to the first worker's receipt (its ``message received`` line);
- lost: no terminal result in GMS at the end, or not SUCCESS;
- doubled: started more than once (``task started`` in the workers' logs), or more than
  one terminal result accepted.

Total time runs from the first send to the last terminal result GMS accepted.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import (
    Result,
    Worker,
    accepted,
    fresh_queue,
    ms,
    percentile,
    start_worker,
    stop_all,
    table,
    terminal_count,
    trivial_recipe,
)
from remote_executor.messages import build_message
from remote_executor.models import TERMINAL_STATUSES, request_urn
from remote_executor.sandbox import Sandbox

SLOTS = 8


def run(
    box: Sandbox, directory: Path, tasks: int = 500, workers: tuple[int, ...] = (1, 2, 4)
) -> Result:
    """One burst per worker count."""
    rows, data = [], {}
    for count in workers:
        figures = burst(box, directory / f"workers-{count}", tasks, count)
        data[str(count)] = figures
        rows.append(
            [
                count,
                count * SLOTS,
                tasks,
                f"{figures['total_seconds']:.1f}",
                f"{tasks / figures['total_seconds']:.1f}",
                ms(figures["queue_wait_p99"]),
                figures["lost"],
                figures["doubled"],
            ]
        )
    clean = all(d["lost"] == 0 and d["doubled"] == 0 for d in data.values())
    return Result(
        name="scale",
        title=f"6. Scale, {tasks} trivial tasks sent at once, {SLOTS} slots a worker",
        table=table(
            [
                "workers",
                "slots",
                "tasks",
                "total s",
                "tasks/s",
                "p99 queue wait ms",
                "lost",
                "doubled",
            ],
            rows,
        ),
        data=data,
        goals=[("no task lost or doubled, for every worker count", clean)],
    )


def burst(box: Sandbox, directory: Path, tasks: int, count: int) -> dict[str, Any]:
    """Send ``tasks`` at once to ``count`` workers; wait for every result; count."""
    url = fresh_queue(box, f"scale{count}")
    env = {"EXECUTOR_MAX_CONCURRENT_TASKS": str(SLOTS)}
    started = [start_worker(box, url, directory / f"w{n}", **env) for n in range(count)]
    sqs = box.aws.client("sqs")
    request_ids = [f"scale-{uuid.uuid4().hex[:10]}" for _ in range(tasks)]
    sent: dict[str, tuple[str, float]] = {}
    try:
        first_send = time.time()
        for start in range(0, tasks, 10):
            batch = request_ids[start : start + 10]
            entries = [
                {
                    "Id": str(n),
                    "MessageBody": box.gms.write_request(
                        build_message(rid, trivial_recipe(), "remote")
                    ),
                }
                for n, rid in enumerate(batch)
            ]
            at = time.time()
            answer = sqs.send_message_batch(QueueUrl=url, Entries=entries)
            if answer.get("Failed"):
                raise RuntimeError(f"SendMessageBatch failed: {answer['Failed']}")
            for entry in answer["Successful"]:
                sent[batch[int(entry["Id"])]] = (entry["MessageId"], at)
        _wait_for_all(box, request_ids, started)
        return _count(box, request_ids, sent, started, first_send)
    finally:
        stop_all(started)


def _wait_for_all(box: Sandbox, request_ids: list[str], workers: list[Worker]) -> None:
    deadline = time.monotonic() + 60 + len(request_ids)
    for rid in request_ids:
        left = max(0.0, deadline - time.monotonic())
        if box.gms.wait_for_status(request_urn(rid), TERMINAL_STATUSES, left) is None:
            tails = "\n".join(worker.tail(5) for worker in workers)
            raise TimeoutError(f"{rid} has no terminal result; the workers' logs end:\n{tails}")


def _count(
    box: Sandbox,
    request_ids: list[str],
    sent: dict[str, tuple[str, float]],
    workers: list[Worker],
    first_send: float,
) -> dict[str, Any]:
    received: dict[str, float] = {}
    starts: Counter[str] = Counter()
    for worker in workers:
        for message_id, at in worker.received_at().items():
            received[message_id] = min(at, received.get(message_id, at))
        for event in worker.log_events():
            if event.get("event") == "task started":
                starts[event["request_urn"]] += 1
    finished = [accepted(box, rid, {"SUCCESS"}) for rid in request_ids]
    lost = [rid for rid, at in zip(request_ids, finished, strict=True) if at is None]
    doubled = [
        rid for rid in request_ids if starts[request_urn(rid)] > 1 or terminal_count(box, rid) > 1
    ]
    waits = [received[mid] - at for mid, at in sent.values() if mid in received]
    last = max(at for at in finished if at is not None)
    return {
        "total_seconds": last - first_send,
        "queue_wait_p50": percentile(waits, 50),
        "queue_wait_p99": percentile(waits, 99),
        "lost": len(lost),
        "doubled": len(doubled),
        # Which ones, to look them up in the workers' logs (kept with --keep).
        "lost_requests": lost,
        "doubled_requests": doubled,
    }
