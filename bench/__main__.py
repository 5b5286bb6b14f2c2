"""``python -m bench``: run the benchmarks, print their tables, write bench/results/.

Everything runs against the local sandbox started here; no AWS account is needed.
``--quick`` runs each benchmark at a size that only shows it works (the test suite's
smoke run); its figures mean nothing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench import bridge, dispatch, idle, log_volume, overhead, real_task, scale, venvs
from bench.common import RESULTS, Result, sandbox
from remote_executor.sandbox import Sandbox

Benchmark = Callable[[Sandbox, Path, bool], Result]

BENCHMARKS: dict[str, Benchmark] = {
    "dispatch": lambda box, d, quick: dispatch.run(box, d, tasks=3 if quick else 200),
    "overhead": lambda box, d, quick: overhead.run(box, d, tasks=3 if quick else 100),
    "real_task": lambda box, d, quick: real_task.run(box, d, repeat=1 if quick else 5),
    "idle": lambda box, d, quick: idle.run(box, d, seconds=8 if quick else 300),
    "log_volume": lambda box, d, quick: log_volume.run(box, d, megabytes=5 if quick else 1000),
    "scale": lambda box, d, quick: (
        scale.run(box, d, tasks=20, workers=(1, 2)) if quick else scale.run(box, d)
    ),
    "bridge": lambda box, d, quick: bridge.run(box, d, requests=3 if quick else 50),
    "venvs": lambda box, d, quick: (
        venvs.run(box, d, repeat=1, warmup=False) if quick else venvs.run(box, d, repeat=5)
    ),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"some of {', '.join(BENCHMARKS)}; default: all")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the JSON goes")
    args = parser.parse_args(argv)
    names = args.names or list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"no benchmark {', '.join(unknown)}; there are {', '.join(BENCHMARKS)}")
    results = []
    box = sandbox()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
            for name in names:
                begun = time.monotonic()
                print(f"running {name} ...", file=sys.stderr, flush=True)
                result = BENCHMARKS[name](box, Path(scratch) / name, args.quick)
                path = result.write(args.results)
                print(result.markdown() + "\n", flush=True)
                print(f"({time.monotonic() - begun:.0f} s; {path})\n", file=sys.stderr, flush=True)
                results.append(result)
    finally:
        box.stop()
    summary = "\n\n".join(result.markdown() for result in results) + "\n"
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "summary.md").write_text(summary, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
