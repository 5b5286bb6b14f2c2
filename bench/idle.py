"""Benchmark 4, idle cost: ``executor run`` with an empty queue for five minutes.

What an executor costs while nothing happens, which is most of its life:

- SQS calls, counted at the endpoint (the sandbox counts every call moto answers), from
  the worker's start, so its start-up calls count too;
- CPU seconds of the worker process (user + system, from /proc), over the whole window
  and over the window after start-up (its imports are a one-off);
- resident memory (VmRSS) at the end, and its peak (VmHWM).

GMS is not counted: the readiness check reads its ``/config`` and one aspect every 30 s.
"""

from __future__ import annotations

import time
from pathlib import Path

from bench.common import Result, cpu_seconds, fresh_queue, memory_mb, start_worker, table
from remote_executor.sandbox import Sandbox

SETTLE_SECONDS = 20.0


def run(box: Sandbox, directory: Path, seconds: float = 300.0) -> Result:
    """Watch an idle worker for ``seconds``."""
    url = fresh_queue(box, "idle")
    sqs_before = _sqs_calls(box)
    begun = time.monotonic()
    worker = start_worker(box, url, directory)
    pid = worker.proc.pid
    try:
        settle = min(SETTLE_SECONDS, seconds / 4)
        time.sleep(max(0.0, settle - (time.monotonic() - begun)))
        cpu_settled = cpu_seconds(pid)
        settled_at = time.monotonic()
        time.sleep(max(0.0, seconds - (time.monotonic() - begun)))
        elapsed = time.monotonic() - begun
        cpu_total = cpu_seconds(pid)
        rss, peak = memory_mb(pid)
        calls = _sqs_calls(box) - sqs_before
    finally:
        worker.stop()
    minutes = elapsed / 60
    figures = {
        "seconds": elapsed,
        "sqs_calls": calls,
        "sqs_calls_per_minute": calls / minutes,
        "cpu_seconds": cpu_total,
        "cpu_percent": 100 * cpu_total / elapsed,
        "cpu_percent_after_start": 100
        * (cpu_total - cpu_settled)
        / (elapsed - (settled_at - begun)),
        "rss_mb": rss,
        "peak_rss_mb": peak,
    }
    rows = [
        [
            "SQS calls a minute (all, from start)",
            f"{figures['sqs_calls_per_minute']:.2f}",
            "<= 3.5",
        ],
        ["CPU, whole window", f"{figures['cpu_percent']:.2f} % ({cpu_total:.2f} s)", "<= 1 %"],
        ["CPU, after start-up", f"{figures['cpu_percent_after_start']:.3f} %", ""],
        ["RSS at the end", f"{rss:.1f} MB", "<= 80 MB"],
        ["peak RSS", f"{peak:.1f} MB", ""],
    ]
    return Result(
        name="idle",
        title=f"4. Idle cost, empty queue, {elapsed / 60:.1f} min",
        table=table(["measure", "value", "goal"], rows),
        data=figures,
        goals=[
            (f"<= 3.5 SQS calls a minute ({calls} in {minutes:.1f} min)", calls / minutes <= 3.5),
            ("<= 1 % CPU over the window", figures["cpu_percent"] <= 1.0),
            ("<= 80 MB RSS", rss <= 80.0),
        ],
    )


def _sqs_calls(box: Sandbox) -> int:
    return sum(n for name, n in box.aws.calls().items() if name.startswith("sqs."))
