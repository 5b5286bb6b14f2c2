"""Benchmark 3, the fixed cost of a real task: one small recipe through the datahub CLI.

The demo recipe (SQLAlchemy on a SQLite database, a datahub-rest sink to the GMS
stand-in) three ways, interleaved so that a busy moment of the machine hits all three:

- direct: ``datahub ingest run -c recipe.yml --report-to <file>`` in a subprocess, wall
  clock, with the environment the executor gives its child (telemetry off): the same work
  the executor's child does, so that the difference is the executor's;
- remote-executor: ``executor run`` with the real CLI, from SendMessage to GMS accepting
  SUCCESS (dispatch, secrets, the run, the final report: everything a user waits for);
- acryl-executor 0.3.20's ``DefaultExecutor`` in native mode (bench/acryl_peer.py), from
  its ``execute()`` call to its return.

The difference between the direct run and the others is what each executor adds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from statistics import median

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


def run(box: Sandbox, directory: Path, repeat: int = 5) -> Result:
    """``repeat`` runs of each, after one untimed warm-up run of each."""
    directory.mkdir(parents=True, exist_ok=True)
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
    request_recipe = yaml.safe_dump({"source": source})
    url = fresh_queue(box, "real")
    worker = start_worker(box, url, directory / "ours", child=_datahub())
    submitter = Submitter(box, url)
    times: dict[str, list[float]] = {"direct": [], "ours": [], "acryl": []}
    try:
        for n in range(repeat + 1):
            direct = _direct(recipe_path, directory)
            ours = _ours(box, submitter, request_recipe, worker)
            acryl = _acryl(recipe_path, box)
            if n:
                times["direct"].append(direct)
                times["ours"].append(ours)
                times["acryl"].append(acryl)
    finally:
        worker.stop()
    base = median(times["direct"])
    names = {
        "direct": "datahub ingest run, direct",
        "ours": "remote-executor, SendMessage to SUCCESS accepted",
        "acryl": "acryl-executor 0.3.20 DefaultExecutor, native",
    }
    rows = []
    for key, values in times.items():
        mid = median(values)
        rows.append(
            [
                names[key],
                len(values),
                f"{mid:.2f}",
                f"{min(values):.2f}",
                f"{max(values):.2f}",
                f"{mid - base:+.2f}",
                f"{mid / base:.3f}",
            ]
        )
    ours_ratio = median(times["ours"]) / base
    return Result(
        name="real_task",
        title=f"3. Fixed cost of a real task, demo recipe ({repeat} runs each, interleaved)",
        table=table(["system", "runs", "median s", "min s", "max s", "added s", "of direct"], rows),
        data={key: {"samples": values} for key, values in times.items()},
        goals=[
            (f"within 5 % of the direct run ({(ours_ratio - 1) * 100:+.1f} %)", ours_ratio <= 1.05)
        ],
    )


def _child_env() -> dict[str, str]:
    """This environment with the defaults the executor gives every child (telemetry off)."""
    return {**CHILD_ENV_DEFAULTS, **os.environ}


def _datahub() -> Path:
    found = shutil.which("datahub", path=str(Path(sys.executable).parent))
    if found is None:
        raise RuntimeError("no datahub CLI beside this Python: pip install -e '.[bench]'")
    return Path(found)


def _direct(recipe_path: Path, directory: Path) -> float:
    report = directory / "direct-report.json"
    command = [str(_datahub()), "ingest", "run", "-c", str(recipe_path), "--report-to", str(report)]
    begun = time.perf_counter()
    done = subprocess.run(
        command, capture_output=True, text=True, cwd=directory, env=_child_env(), check=False
    )
    seconds = time.perf_counter() - begun
    if done.returncode != 0:
        raise RuntimeError(f"the direct run failed ({done.returncode}):\n{done.stdout[-2000:]}")
    return seconds


def _ours(box: Sandbox, submitter: Submitter, recipe: str, worker: Worker) -> float:
    request_id = submitter.submit(recipe)
    result = box.gms.wait_for_status(request_urn(request_id), {"SUCCESS", "FAILURE"}, 300)
    if result is None or result["status"] != "SUCCESS":
        raise RuntimeError(f"the executor's run did not succeed: {result}\n{worker.tail()}")
    done = accepted(box, request_id, {"SUCCESS"})
    assert done is not None
    return done - submitter.sent[request_id][1]


def _acryl(recipe_path: Path, box: Sandbox) -> float:
    env = {**_child_env(), "DATAHUB_GMS_URL": box.gms.url, "DATAHUB_GMS_TOKEN": TOKEN}
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH / "acryl_peer.py"),
            "--recipe",
            str(recipe_path),
            "--repeat",
            "1",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"acryl-executor's run failed:\n{done.stderr[-2000:]}")
    return float(json.loads(done.stdout)["durations_seconds"][0])
