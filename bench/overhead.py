"""Benchmark 2, the executor's own overhead per task, with a child that does nothing.

Two spans per task, back to back, one task at a time:

- start: the worker received the message (its ``message received`` log line) to the
  child's first line (bench/children/trivial.sh prints bash's clock): reading the
  request's state in GMS, extending the lease, reporting RUNNING, preparing the task
  directory and the recipe, resolving secrets, and fork and exec;
- finish: the child's last line to GMS accepting the terminal result: reaping the
  child, reading the rest of its output, composing the report, and the report call.

Fork, exec and bash's start-up are in the start span; the floor row measures them
alone, the same child started by a bare ``subprocess.Popen`` from Python.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from bench.common import (
    TRIVIAL_CHILD,
    Result,
    Submitter,
    accepted,
    child_times,
    fresh_queue,
    ms,
    percentile,
    start_worker,
    table,
    trivial_recipe,
)
from remote_executor.models import request_urn
from remote_executor.sandbox import Sandbox

ENDED = {"SUCCESS", "FAILURE"}  # what the trivial child can end as


def run(box: Sandbox, directory: Path, tasks: int = 100) -> Result:
    """``tasks`` tasks through ``executor run``; the spans in seconds."""
    spans = measure(box, directory, tasks)
    spans["floor: Popen to the child's first line"] = spawn_floor(tasks)
    rows = []
    for span, values in spans.items():
        rows.append(
            [
                span,
                len(values),
                *(ms(percentile(values, pct)) for pct in (50, 95, 99)),
                ms(max(values)),
            ]
        )
    total = spans["total (start + finish)"]
    p50 = percentile(total, 50)
    return Result(
        name="overhead",
        title=f"2. Overhead per task, trivial child ({tasks} tasks, one at a time)",
        table=table(["span", "tasks", "p50 ms", "p95 ms", "p99 ms", "max ms"], rows),
        data={span: {"samples": values} for span, values in spans.items()},
        goals=[(f"<= 50 ms a task (p50 {ms(p50)} ms)", p50 <= 0.050)],
    )


def measure(box: Sandbox, directory: Path, tasks: int) -> dict[str, list[float]]:
    """Start and finish spans of each task, measured on the worker's and the child's clocks."""
    url = fresh_queue(box, "overhead")
    worker = start_worker(box, url, directory)
    submitter = Submitter(box, url)
    timed: list[str] = []
    try:
        for n in range(tasks + 1):  # the first pays one-off costs
            request_id = submitter.submit(trivial_recipe())
            if box.gms.wait_for_status(request_urn(request_id), ENDED, 60) is None:
                raise TimeoutError(f"{request_id} did not end; worker log:\n{worker.tail()}")
            if n:
                timed.append(request_id)
    finally:
        worker.stop()
    received = worker.received_at()
    starts: list[float] = []
    finishes: list[float] = []
    for request_id in timed:
        child_start, child_exit = child_times(worker.task_log(request_id))
        done = accepted(box, request_id, ENDED)
        assert done is not None
        starts.append(child_start - received[submitter.sent[request_id][0]])
        finishes.append(done - child_exit)
    return {
        "start: received to the child's first line": starts,
        "finish: the child's last line to terminal accepted": finishes,
        "total (start + finish)": [a + b for a, b in zip(starts, finishes, strict=True)],
    }


def spawn_floor(count: int) -> list[float]:
    """The same child started straight from Python: fork, exec and bash, nothing else."""
    spans = []
    for _ in range(count):
        before = time.time()
        output = subprocess.run(
            [str(TRIVIAL_CHILD)], capture_output=True, text=True, check=True
        ).stdout
        started = float(output.split()[3])
        spans.append(started - before)
    return spans
