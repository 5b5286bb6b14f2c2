"""Benchmark 7, CLI versions: what a request's ``args.version`` costs, end to end.

The demo recipe of benchmark 3 (SQLAlchemy on SQLite, a datahub-rest sink to the GMS
stand-in) in every row; each sample is one whole task, wall clock:

- native: ``args.version: native`` through ``executor run``, the CLI installed beside the
  executor, from SendMessage to GMS accepting SUCCESS;
- pinned, cold: ``args.version: 1.7.0.15`` on a worker started for this one task with a
  fresh EXECUTOR_VENV_DIR, so the task reads the release's facts and builds its
  environment (``uv venv``, ``uv pip install`` under the release's constraints, ``datahub
  version``) before it runs; uv's download cache (UV_CACHE_DIR) is warm, filled by a
  throwaway build first: the cost of a build, not of a download;
- pinned, cache hit: the same request on a worker that built that environment before;
- acryl-executor 0.3.20 and the engine inside acryl-datahub (``datahub.executor``):
  ``DefaultExecutor.execute()`` of a ``SubProcessIngestionTask`` with ``version:
  1.7.0.15`` (bench/acryl_peer.py), with the same warm uv cache. Both build the venv
  inside the run's own directory and remove it at the end: every run builds.

Every worker here runs without EXECUTOR_DATAHUB_COMMAND: with one set, the executor cannot
tell which CLI it has and runs that command for every version. The rows are interleaved,
one of each per round, after one untimed round, so that a busy moment hits all of them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from importlib.metadata import version as installed_version
from pathlib import Path
from statistics import median
from typing import Any

import yaml

from bench.common import (
    BENCH,
    TOKEN,
    Result,
    Submitter,
    Worker,
    accepted,
    fresh_queue,
    start_worker,
    table,
)
from remote_executor.models import request_urn
from remote_executor.sandbox import Sandbox
from remote_executor.sandbox.demo import create_demo_database
from remote_executor.settings import CHILD_ENV_DEFAULTS
from remote_executor.venvs import Installer

# 1.7.0.16's constraints.txt does not resolve (it pins certifi==2026.10.19, which the
# index does not have); 1.7.0.15's does.
VERSION = "1.7.0.15"
ROWS = ("native", "cold", "hit", "acryl", "datahub")
TASK_SECONDS = 600
# What each task's log must say of the CLI it chose (a task that ran another way fails).
NATIVE = "installed beside the executor"
BUILT = f"Installing acryl-datahub[datahub-rest,sqlalchemy]=={VERSION} into a new environment"
HIT = "Using cached environment"
_INSTALLED = re.compile(r"Installed \S+ in ([0-9.]+) s\.")


@dataclass(frozen=True)
class Sample:
    """One task: its wall time, the CLI version its report names, its build's seconds."""

    seconds: float
    cli_version: str | None
    build_seconds: float = 0.0


def run(box: Sandbox, directory: Path, repeat: int = 5, warmup: bool = True) -> Result:
    """``repeat`` rounds of every row, after one untimed round if ``warmup``."""
    directory.mkdir(parents=True, exist_ok=True)
    recipe_path, request_recipe = _recipes(box, directory)
    uv_cache = directory / "uv-cache"
    peer_env = _peer_env(box, uv_cache)
    times: dict[str, list[float]] = {row: [] for row in ROWS}
    cli: dict[str, list[str | None]] = {row: [] for row in ROWS}
    build_seconds: list[float] = []
    url = fresh_queue(box, "venvs")
    worker = _worker(box, url, directory / "ours", uv_cache)
    submitter = Submitter(box, url)
    try:
        # The throwaway build: it fills the uv cache from the index, and leaves the
        # environment in this worker's cache, so its later pinned tasks are cache hits.
        first = _ours(box, submitter, request_recipe, worker, version=VERSION, expect=BUILT)
        for n in range(repeat + 1 if warmup else repeat):
            native = _ours(box, submitter, request_recipe, worker, version="native", expect=NATIVE)
            hit = _ours(box, submitter, request_recipe, worker, version=VERSION, expect=HIT)
            cold = _cold(box, directory / f"cold-{n}", request_recipe, uv_cache)
            acryl = _peer("acryl-executor", recipe_path, peer_env)
            engine = _peer("datahub", recipe_path, peer_env)
            if n or not warmup:
                for row, sample in zip(ROWS, (native, cold, hit, acryl, engine), strict=True):
                    times[row].append(sample.seconds)
                    cli[row].append(sample.cli_version)
                build_seconds.append(cold.build_seconds)
    finally:
        worker.stop()
    return _result(times, cli, build_seconds, first, repeat)


def _result(
    times: dict[str, list[float]],
    cli: dict[str, list[str | None]],
    build_seconds: list[float],
    first: Sample,
    repeat: int,
) -> Result:
    native_version = installed_version("acryl-datahub")
    names = {
        "native": f"1. remote-executor, native (acryl-datahub {native_version})",
        "cold": f"2. remote-executor, {VERSION} built (fresh venv dir, warm uv cache)",
        "hit": f"3. remote-executor, {VERSION} cache hit",
        "acryl": f"4. acryl-executor {installed_version('acryl-executor')}, {VERSION}",
        "datahub": f"5. datahub.executor of acryl-datahub {native_version}, {VERSION}",
    }
    mid = {row: median(values) for row, values in times.items()}
    builds = {"cold": f"{median(build_seconds):.2f}"}
    rows: list[list[object]] = [
        [
            names[row],
            len(values),
            f"{mid[row]:.2f}",
            f"{min(values):.2f}",
            f"{max(values):.2f}",
            builds.get(row, ""),
            f"{mid[row] / mid['native']:.2f}",
            f"{mid[row] / mid['hit']:.2f}",
        ]
        for row, values in times.items()
    ]
    first_row = f"(the throwaway build: {VERSION} with an empty uv cache, not in the rows)"
    first_build = f"{first.build_seconds:.2f}"
    rows.append([first_row, 1, f"{first.seconds:.2f}", "", "", first_build, "", ""])
    hit_of_native = mid["hit"] / mid["native"]
    acryl_of_hit = mid["acryl"] / mid["hit"]
    return Result(
        name="venvs",
        title=f"7. CLI versions, demo recipe ({repeat} runs each, interleaved)",
        table=table(
            ["system", "runs", "median s", "min s", "max s", "build s", "of native", "of hit"],
            rows,
        ),
        data={
            **{
                row: {"samples": times[row], "cli_versions": cli[row], "name": names[row]}
                for row in ROWS
            },
            "cold_build_seconds": build_seconds,
            "first_build": {"seconds": first.seconds, "build_seconds": first.build_seconds},
            "version": VERSION,
            "native_version": native_version,
        },
        goals=[
            (f"cache hit within 1.1 x native ({hit_of_native:.2f} x)", hit_of_native <= 1.1),
            (
                f"acryl-executor at least 3 x the cache hit ({acryl_of_hit:.2f} x)",
                acryl_of_hit >= 3,
            ),
            (f"a cold task, build and run, under 15 s ({mid['cold']:.2f} s)", mid["cold"] < 15),
        ],
    )


def _recipes(box: Sandbox, directory: Path) -> tuple[Path, str]:
    """The recipe file the peers read (with its sink), and the request's recipe."""
    database = directory / "demo.db"
    create_demo_database(database)
    source = {
        "type": "sqlalchemy",
        "config": {"platform": "sqlite", "connect_uri": f"sqlite:///{database}"},
    }
    sink = {"type": "datahub-rest", "config": {"server": box.gms.url, "token": TOKEN}}
    recipe_path = directory / "recipe.yml"
    recipe_path.write_text(yaml.safe_dump({"source": source, "sink": sink}))
    # The executor adds the sink to its own GMS itself, as it does for every request.
    return recipe_path, yaml.safe_dump({"source": source})


def _worker(box: Sandbox, url: str, directory: Path, uv_cache: Path) -> Worker:
    """A worker with the native CLI (no EXECUTOR_DATAHUB_COMMAND) and its own venv dir."""
    return start_worker(
        box,
        url,
        directory,
        child=None,
        EXECUTOR_VENV_DIR=str(directory / "venvs"),
        UV_CACHE_DIR=str(uv_cache),
    )


def _peer_env(box: Sandbox, uv_cache: Path) -> dict[str, str]:
    """The peers' environment: the executor's child defaults (telemetry off), their GMS,
    and uv as the worker's installer runs it: the same cache, the same index settings."""
    base = {
        **CHILD_ENV_DEFAULTS,
        **os.environ,
        "DATAHUB_GMS_URL": box.gms.url,
        "DATAHUB_GMS_TOKEN": TOKEN,
    }
    return Installer(environ=os.environ, inherited=base, cache_dir=uv_cache).environment()


def _ours(
    box: Sandbox, submitter: Submitter, recipe: str, worker: Worker, *, version: str, expect: str
) -> Sample:
    """One task of ``version``: SendMessage to SUCCESS accepted, the CLI version its
    structured report names, the build's seconds if it built one. ``expect`` is what its
    log or report must say: which CLI it chose, and whether it built it."""
    request_id = submitter.submit(recipe, version=version)
    result = box.gms.wait_for_status(request_urn(request_id), {"SUCCESS", "FAILURE"}, TASK_SECONDS)
    if result is None or result["status"] != "SUCCESS":
        raise RuntimeError(
            f"the executor's {version} run did not succeed: {str(result)[-3000:]}\n{worker.tail()}"
        )
    done = accepted(box, request_id, {"SUCCESS"})
    assert done is not None
    log = worker.task_log(request_id).read_text(encoding="utf-8", errors="replace")
    if expect not in log and expect not in str(result.get("report")):
        raise RuntimeError(f"the {version} task's log has no {expect!r}:\n{log[:3000]}")
    built = _INSTALLED.search(log)
    return Sample(
        done - submitter.sent[request_id][1],
        _cli_version(result),
        float(built.group(1)) if built else 0.0,
    )


def _cold(box: Sandbox, directory: Path, recipe: str, uv_cache: Path) -> Sample:
    """One pinned task on a worker of its own, with an empty venv dir (its start and stop
    are not timed)."""
    url = fresh_queue(box, "venvs-cold")
    worker = _worker(box, url, directory, uv_cache)
    try:
        return _ours(box, Submitter(box, url), recipe, worker, version=VERSION, expect=BUILT)
    finally:
        worker.stop()


def _peer(engine: str, recipe_path: Path, env: dict[str, str]) -> Sample:
    """One run of bench/acryl_peer.py: (its execute() call, the CLI version it ran)."""
    command = [sys.executable, str(BENCH / "acryl_peer.py"), "--recipe", str(recipe_path)]
    command += ["--repeat", "1", "--version", VERSION, "--engine", engine]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the {engine} peer's run failed:\n{done.stderr[-3000:]}")
    outcome = json.loads(done.stdout)
    return Sample(float(outcome["durations_seconds"][0]), outcome["cli_versions"][0])


def _cli_version(result: dict[str, Any]) -> str | None:
    """The CLI version the run's structured report (the CLI's ``--report-to``) names."""
    structured = result.get("structuredReport") or {}
    try:
        report = json.loads(structured.get("serializedValue") or "{}")
        return str(report["cli"]["cli_version"])
    except (ValueError, KeyError, TypeError):
        return None
