"""Benchmark 5, log volume: a child writing ~1 GB of log lines as fast as it can.

The child (bench/children/flood.sh) is handed a secret from Secrets Manager, so every
chunk goes through the masking as in a real task, with the GMS token and that secret
registered; its last line prints the secret, which must reach the log masked.

- capture: bytes in the task's log on disk over the time from the child's first line
  to GMS accepting the terminal result (reading, masking, writing, the final report);
- floor: the same child through a pipe to ``cat > file`` in the same directory: the
  same pipe and the same disk writes, read by the simplest reader there is;
- RSS growth: the worker's peak RSS (VmHWM) after the task less its RSS before;
- complete: the log on disk has every line, byte for byte in length, the secret masked.

The first run sets ``EXECUTOR_TASK_LOG_MAX_MB`` above the flood, so the whole log is kept
and checked; the second runs with the default cap of 200 MB (a fifth of the flood in a
quick run), where the log keeps its head
and tail: its rate is of the child's output (what the capture read and masked), and it
must hold the marker between head and tail and end with the masked last line.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from bench.common import (
    Result,
    Submitter,
    accepted,
    fresh_queue,
    memory_mb,
    start_worker,
    table,
)
from remote_executor.models import request_urn
from remote_executor.sandbox import Sandbox
from remote_executor.secrets.redact import MASK

FLOOD_CHILD = Path(__file__).parent / "children" / "flood.sh"
LINE_BYTES = 179  # the flood line with its newline
PASSWORD = "flood-Pa55word-7e2c"
RECIPE = "source:\n  type: flood\n  config:\n    password: ${BENCH_PASSWORD}\n"


def run(box: Sandbox, directory: Path, megabytes: int = 1000) -> Result:
    """One task flooding ``megabytes`` MB (10^6 bytes) of lines."""
    lines = megabytes * 1_000_000 // LINE_BYTES
    floor = floor_rate(directory / "floor", lines)
    ours = capture(box, directory / "ours", lines, log_max_mb=megabytes * 4)
    # The default cap, 200 MB, under a 1000 MB flood; a fifth of the flood at smaller sizes.
    cap_mb = max(1, min(200, megabytes // 5))
    capped = capture(box, directory / "capped", lines, log_max_mb=cap_mb)
    mb = ours["bytes"] / 1e6
    rate = mb / ours["seconds"]
    capped_rate = lines * LINE_BYTES / 1e6 / capped["seconds"]
    rows = [
        ["floor: child piped to cat > file", f"{floor:.0f}", "", "1.00"],
        [
            "remote-executor capture",
            f"{rate:.0f}",
            f"{ours['rss_growth_mb']:.1f}",
            f"{rate / floor:.2f}",
        ],
        [
            f"remote-executor capture, log capped at {cap_mb} MB",
            f"{capped_rate:.0f}",
            f"{capped['rss_growth_mb']:.1f}",
            f"{capped_rate / floor:.2f}",
        ],
    ]
    return Result(
        name="log_volume",
        title=f"5. Log volume, one child writing {mb:.0f} MB of {lines} lines",
        table=table(["system", "MB/s", "worker RSS growth MB", "of the floor"], rows),
        data={
            **ours,
            "mb_per_second": rate,
            "floor_mb_per_second": floor,
            "capped": {**capped, "mb_per_second": capped_rate},
        },
        goals=[
            (f">= 200 MB/s captured ({rate:.0f} MB/s)", rate >= 200),
            (f"<= 32 MB RSS growth ({ours['rss_growth_mb']:.1f} MB)", ours["rss_growth_mb"] <= 32),
            ("the full log on disk, secret masked", bool(ours["complete"])),
            (
                f">= 200 MB/s captured with the log capped ({capped_rate:.0f} MB/s)",
                capped_rate >= 200,
            ),
            ("the capped log holds head, marker and the masked tail", bool(capped["complete"])),
        ],
    )


def capture(
    box: Sandbox, directory: Path, lines: int, log_max_mb: int
) -> dict[str, float | int | bool]:
    """Run the flood through ``executor run``; time, memory and the log's completeness."""
    url = fresh_queue(box, "flood")
    box.aws.put_secret("bench/flood-password", PASSWORD)
    worker = start_worker(
        box,
        url,
        directory,
        child=FLOOD_CHILD,
        EXECUTOR_SECRETS="BENCH_PASSWORD=bench/flood-password",
        EXECUTOR_TASK_LOG_MAX_MB=str(log_max_mb),
    )
    try:
        rss_before, _ = memory_mb(worker.proc.pid)
        request_id = Submitter(box, url).submit(
            RECIPE, extra_env_vars={"BENCH_FLOOD_LINES": str(lines)}
        )
        urn = request_urn(request_id)
        result = box.gms.wait_for_status(urn, {"SUCCESS", "FAILURE"}, 600)
        if result is None or result["status"] != "SUCCESS":
            raise RuntimeError(f"the flood did not succeed: {result}\n{worker.tail()}")
        _, peak = memory_mb(worker.proc.pid)
        log_path = worker.task_log(request_id)
        started = _first_stamp(log_path)
        done = accepted(box, request_id, {"SUCCESS"})
        assert done is not None
        size = log_path.stat().st_size
        whole = log_max_mb * 1024 * 1024 >= lines * LINE_BYTES
        complete = _complete(log_path, lines) if whole else _capped(log_path, log_max_mb)
    finally:
        worker.stop()
    return {
        "lines": lines,
        "bytes": size,
        "seconds": done - started,
        "rss_before_mb": rss_before,
        "rss_growth_mb": max(0.0, peak - rss_before),
        "complete": complete,
    }


def floor_rate(directory: Path, lines: int) -> float:
    """MB/s of the child through a pipe to ``cat``, which writes the file."""
    directory.mkdir(parents=True, exist_ok=True)
    out = directory / "flood.log"
    env = {"BENCH_FLOOD_LINES": str(lines), "PATH": "/usr/bin:/bin"}
    pipeline = ["bash", "-c", 'set -o pipefail; "$0" | cat > "$1"', str(FLOOD_CHILD), str(out)]
    begun = time.perf_counter()
    subprocess.run(pipeline, env=env, check=True)
    seconds = time.perf_counter() - begun
    rate = out.stat().st_size / 1e6 / seconds
    out.unlink()
    return rate


def _first_stamp(log_path: Path) -> float:
    with log_path.open(encoding="utf-8") as log:
        return float(log.readline().split()[3])


def _complete(log_path: Path, lines: int) -> bool:
    """Every flood line there, in full; the secret masked and nowhere in clear."""
    expected = lines * LINE_BYTES
    flood_lines = 0
    flood_bytes = 0
    tail: list[str] = []
    with log_path.open("rb") as log:
        for line in log:
            if line.startswith(b"[2026-11-22 10:00:00,123] INFO"):
                flood_lines += 1
                flood_bytes += len(line)
            else:
                tail.append(line.decode("utf-8"))
    last = tail[-1] if tail else ""
    return (
        flood_lines == lines
        and flood_bytes == expected
        and last.rstrip("\n") == f"flood-child connecting with password={MASK}"
        and not any(PASSWORD in line for line in tail)
    )


def _capped(log_path: Path, log_max_mb: int) -> bool:
    """Head, the marker, then the tail; no larger than the cap allows; the secret masked."""
    marker = b"~~~~ remote-executor: "
    has_marker = False
    last = b""
    with log_path.open("rb") as log:
        for line in log:
            has_marker = has_marker or line.startswith(marker)
            if PASSWORD.encode() in line:
                return False
            last = line
    return (
        has_marker
        and log_path.stat().st_size <= log_max_mb * 1024 * 1024 + 64 * 1024
        and last.rstrip(b"\n").decode() == f"flood-child connecting with password={MASK}"
    )
