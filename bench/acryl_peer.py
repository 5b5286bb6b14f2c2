"""The acryl-executor peer of benchmarks 3 (the fixed cost of a real task) and 7 (CLI
versions).

Runs one recipe N times through acryl-executor 0.3.20's ``DefaultExecutor``, in this
process, as a ``RUN_INGEST`` task of type ``SubProcessIngestionTask`` with ``version:
native`` (the ``datahub`` CLI of this venv, no venv built per task), and prints one JSON
object on stdout: ``{"durations_seconds": [...], "statuses": [...], "cli_versions":
[...], "version": "0.3.20", "engine": "acryl-executor"}`` (``cli_versions``: what each
run's ingestion report says of its CLI).

``--version 1.7.0.15`` asks for that CLI instead: the task builds a venv for it with uv
inside the run's own directory (``<tmp_dir>/<exec id>/venv-...``), which it removes when
the run ends, so every run builds one. uv's download cache is ``UV_CACHE_DIR`` of this
process's environment. ``--engine datahub`` runs the same task of the engine that ships
inside acryl-datahub (``datahub.executor``, its successor), installed in this venv.

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
import importlib
import json
import os
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any, NoReturn

import yaml

PEER_VERSION = "0.3.20"
TASK_NAME = "RUN_INGEST"
REPORT_TAIL_LINES = 40
# Engine name: (its package, the distribution that ships it, the version this peer is for).
ENGINES = {
    "acryl-executor": ("acryl.executor", "acryl-executor", PEER_VERSION),
    "datahub": ("datahub.executor", "acryl-datahub", None),
}


@dataclass(frozen=True)
class Engine:
    """The classes of one engine: acryl-executor's, or acryl-datahub's datahub.executor."""

    package: str
    default_executor: Any
    executor_config: Any
    task_config: Any
    request: Any
    success: Any

    @classmethod
    def load(cls, name: str) -> Engine:
        package = ENGINES[name][0]
        executor = importlib.import_module(f"{package}.execution.default_executor")
        result = importlib.import_module(f"{package}.result.execution_result")
        return cls(
            package,
            executor.DefaultExecutor,
            executor.DefaultExecutorConfig,
            importlib.import_module(f"{package}.execution.task").TaskConfig,
            importlib.import_module(f"{package}.request.execution_request").ExecutionRequest,
            result.Type.SUCCESS,
        )


def _task_config(engine: Engine, work_dir: Path) -> Any:
    # heartbeat_time_seconds stays at its default (2 s): the task's monitor only notices
    # the CLI's exit after a sleep of that length, so a task ends on the next tick. That
    # tick is how acryl-executor works, part of its real cost, and is measured as such.
    return engine.task_config(
        name=TASK_NAME,
        type=f"{engine.package}.execution.sub_process_ingestion_task.SubProcessIngestionTask",
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


def _request(engine: Engine, recipe: str, cli_version: str) -> Any:
    # acryl-executor starts run_ingest_with_masking.py by name, looked up on the child's
    # PATH: that script lives next to this venv's python (datahub.executor starts its
    # wrapper by path with this Python, and ignores the PATH).
    path = f"{Path(sys.prefix) / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    return engine.request(
        exec_id=f"acryl-peer-{uuid.uuid4()}",
        name=TASK_NAME,
        args={"recipe": recipe, "version": cli_version, "extra_env_vars": {"PATH": path}},
    )


def _ingested(result: Any) -> bool:
    """True if the CLI's own report (``--report-to``) says the source produced metadata."""
    text = result.get_structured_report()
    if text is None:
        return False
    report = json.loads(text)
    return report.get("source", {}).get("report", {}).get("events_produced", 0) > 0


def _cli_version(result: Any) -> str | None:
    """The version of the CLI that ran, as its own report (``--report-to``) names it."""
    text = result.get_structured_report()
    try:
        return str(json.loads(text)["cli"]["cli_version"])
    except (TypeError, ValueError, KeyError):
        return None


def _fail(run: int, result: Any, why: str) -> NoReturn:
    tail = "\n".join(result.get_summary().splitlines()[-REPORT_TAIL_LINES:])
    sys.exit(f"run {run} did not succeed ({why}); the tail of its report:\n{tail}")


def run_peer(
    recipe: str, repeat: int, cli_version: str = "native", engine_name: str = "acryl-executor"
) -> dict[str, Any]:
    """Run the recipe ``repeat`` times, one task after another; stop at the first failure."""
    engine = Engine.load(engine_name)
    durations: list[float] = []
    statuses: list[str] = []
    cli_versions: list[str | None] = []
    with tempfile.TemporaryDirectory(prefix="acryl-peer-") as work_dir:
        config = engine.executor_config(
            id="default", task_configs=[_task_config(engine, Path(work_dir))]
        )
        executor = engine.default_executor(config)
        try:
            for run in range(1, repeat + 1):
                request = _request(engine, recipe, cli_version)
                started = time.perf_counter()
                result = executor.execute(request)
                durations.append(time.perf_counter() - started)
                statuses.append(result.type.name)
                if result.type is not engine.success:
                    _fail(run, result, f"status {result.type.name}")
                if not _ingested(result):
                    _fail(run, result, "no ingestion report with events produced")
                cli_versions.append(_cli_version(result))
        finally:
            executor.shutdown()
    return {
        "durations_seconds": durations,
        "statuses": statuses,
        "cli_versions": cli_versions,
        "version": version(ENGINES[engine_name][1]),
        "engine": engine_name,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", type=Path, required=True)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--version",
        default="native",
        dest="cli_version",
        help="args.version of each task: native (default), or a release such as 1.7.0.15",
    )
    parser.add_argument(
        "--engine",
        choices=sorted(ENGINES),
        default="acryl-executor",
        help="acryl-executor 0.3.20 (default), or datahub.executor of acryl-datahub",
    )
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
    _package, distribution, wanted = ENGINES[args.engine]
    installed = version(distribution)
    if wanted is not None and installed != wanted:
        sys.exit(f"{distribution} {installed} is installed; this peer is for {wanted}")
    recipe = _recipe_json(args.recipe, args.gms_url, args.token)
    # The executor prints its progress lines on stdout; stdout carries only the JSON.
    with contextlib.redirect_stdout(sys.stderr):
        outcome = run_peer(recipe, args.repeat, args.cli_version, args.engine)
    print(json.dumps(outcome))


if __name__ == "__main__":
    main()
