"""The acryl-executor peer of benchmark 3, the fixed cost of a real task.

Runs one recipe N times through acryl-executor 0.3.20's ``DefaultExecutor``, in this
process, as a ``RUN_INGEST`` task of type ``SubProcessIngestionTask`` with ``version:
native`` (the ``datahub`` CLI of this venv, no venv built per task), and prints one JSON
object on stdout: ``{"durations_seconds": [...], "statuses": [...], "version": "0.3.20"}``.

A duration is wall clock from ``DefaultExecutor.execute()`` to its return: the call runs
the task to its end on an event loop of its own and hands back the ``ExecutionResult``,
which is how ``DefaultExecutor`` reports (it sends nothing to GMS; its subclass
``ReportingExecutor`` does). So no polling is added to what is measured.

Where its time goes, besides ``datahub ingest run`` itself: every task starts the wrapper
``run_ingest_with_masking.py``, which first runs ``datahub ingest run --help`` (a whole
CLI start-up, to see whether ``--report-to`` exists) and a Python child reading the
installed acryl-datahub version; and the task only ends on the heartbeat tick after the
CLI exits (see ``_task_config``).

Run it with ``DATAHUB_GMS_URL`` (and ``DATAHUB_GMS_TOKEN``) set, as a deployed executor is:
after each run the task's log upload step asks ``get_default_graph()`` for a GMS from this
process's environment, even with no bucket set. Without them that step logs a
``MissingConfigError`` and goes on; with them it checks the server once (it is cached).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
import uuid
from importlib.metadata import version
from pathlib import Path
from typing import Any, NoReturn

import yaml
from acryl.executor.execution.default_executor import DefaultExecutor, DefaultExecutorConfig
from acryl.executor.execution.task import TaskConfig
from acryl.executor.request.execution_request import ExecutionRequest
from acryl.executor.result.execution_result import ExecutionResult, Type

PEER_VERSION = "0.3.20"
TASK_NAME = "RUN_INGEST"
TASK_TYPE = "acryl.executor.execution.sub_process_ingestion_task.SubProcessIngestionTask"
REPORT_TAIL_LINES = 40


def _task_config(work_dir: Path) -> TaskConfig:
    # heartbeat_time_seconds stays at its default (2 s): the task's monitor only notices
    # the CLI's exit after a sleep of that length, so a task ends on the next tick. That
    # tick is how acryl-executor works, part of its real cost, and is measured as such.
    return TaskConfig(
        name=TASK_NAME,
        type=TASK_TYPE,
        configs={"tmp_dir": str(work_dir / "ingest"), "log_dir": str(work_dir / "logs")},
    )


def _recipe_json(path: Path, gms_url: str | None, token: str | None) -> str:
    """The recipe as the task wants it (JSON text), with a datahub-rest sink if it has none."""
    recipe = yaml.safe_load(path.read_text())
    if "sink" not in recipe:
        if gms_url is None:
            sys.exit(f"{path} has no sink: pass --gms-url to send its metadata there")
        recipe["sink"] = {"type": "datahub-rest", "config": {"server": gms_url, "token": token}}
    return json.dumps(recipe)


def _request(recipe: str) -> ExecutionRequest:
    # The task starts run_ingest_with_masking.py by name, looked up on the child's PATH;
    # in native mode that script lives next to this venv's python and datahub.
    path = f"{Path(sys.prefix) / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    return ExecutionRequest(
        exec_id=f"acryl-peer-{uuid.uuid4()}",
        name=TASK_NAME,
        args={"recipe": recipe, "version": "native", "extra_env_vars": {"PATH": path}},
    )


def _ingested(result: ExecutionResult) -> bool:
    """True if the CLI's own report (``--report-to``) says the source produced metadata."""
    text = result.get_structured_report()
    if text is None:
        return False
    report = json.loads(text)
    return report.get("source", {}).get("report", {}).get("events_produced", 0) > 0


def _fail(run: int, result: ExecutionResult, why: str) -> NoReturn:
    tail = "\n".join(result.get_summary().splitlines()[-REPORT_TAIL_LINES:])
    sys.exit(f"run {run} did not succeed ({why}); the tail of its report:\n{tail}")


def run_peer(recipe: str, repeat: int) -> dict[str, Any]:
    """Run the recipe ``repeat`` times, one task after another; stop at the first failure."""
    durations: list[float] = []
    statuses: list[str] = []
    with tempfile.TemporaryDirectory(prefix="acryl-peer-") as work_dir:
        config = DefaultExecutorConfig(id="default", task_configs=[_task_config(Path(work_dir))])
        executor = DefaultExecutor(config)
        try:
            for run in range(1, repeat + 1):
                request = _request(recipe)
                started = time.perf_counter()
                result = executor.execute(request)
                durations.append(time.perf_counter() - started)
                statuses.append(result.type.name)
                if result.type is not Type.SUCCESS:
                    _fail(run, result, f"status {result.type.name}")
                if not _ingested(result):
                    _fail(run, result, "no ingestion report with events produced")
        finally:
            executor.shutdown()
    return {"durations_seconds": durations, "statuses": statuses, "version": PEER_VERSION}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", type=Path, required=True)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--gms-url",
        default=os.environ.get("DATAHUB_GMS_URL"),
        help="the sink for a recipe without one (default: $DATAHUB_GMS_URL)",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("DATAHUB_GMS_TOKEN"),
        help="GMS token of that sink (default: $DATAHUB_GMS_TOKEN)",
    )
    args = parser.parse_args()
    installed = version("acryl-executor")
    if installed != PEER_VERSION:
        sys.exit(f"acryl-executor {installed} is installed; this peer is for {PEER_VERSION}")
    recipe = _recipe_json(args.recipe, args.gms_url, args.token)
    # The executor prints its progress lines on stdout; stdout carries only the JSON.
    with contextlib.redirect_stdout(sys.stderr):
        outcome = run_peer(recipe, args.repeat)
    print(json.dumps(outcome))


if __name__ == "__main__":
    main()
