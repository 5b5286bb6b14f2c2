"""One request, from recipe to result: the path shared by the worker and ``executor exec``.

Order matters: the recipe is checked and every ``${NAME}`` resolved before the
subprocess starts, so a bad recipe or a missing secret ends the task at once
with a reason, and nothing runs half-configured.
"""

from __future__ import annotations

import enum
import json
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from remote_executor import __version__
from remote_executor.capture import LogTail
from remote_executor.errors import RecipeError, RunnerError, SecretError
from remote_executor.handoff import Handoff
from remote_executor.models import ExecutionRequest, Status, TaskKind, TaskResult
from remote_executor.recipe import SERVER_ENV, TOKEN_ENV, PreparedRecipe, prepare_recipe
from remote_executor.report import compose_report
from remote_executor.runner import ProcessRun, RunOutcome, RunSpec
from remote_executor.secrets import (
    Redactor,
    Resolved,
    SecretSources,
    find_references,
    variable_name,
)


@dataclass(frozen=True)
class TaskContext:
    """What every task of one executor shares."""

    datahub_command: tuple[str, ...]
    work_dir: Path
    base_env: dict[str, str]
    secrets: SecretSources
    redactor: Redactor
    handoff: Handoff
    gms_url: str | None
    token: str | None
    # Used when the recipe has no sink and there is no GMS (``executor exec``): a file
    # in the task directory, so the user sees what would have been ingested.
    file_sink_when_no_gms: bool = False
    report_max_chars: int = 800_000
    worker_id: str = "local"
    kill_grace_seconds: float = 10.0
    timeout_seconds: float = 86_400.0
    memory_limit_mb: int | None = None


class StopKind(enum.Enum):
    """Why a task was stopped early, which decides its status."""

    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    LEASE_LOST = "lease lost"
    SHUTDOWN = "shutdown"

    @property
    def status(self) -> Status:
        """The terminal status of a task stopped this way (SHUTDOWN is released, not final)."""
        if self is StopKind.TIMEOUT:
            return Status.TIMEOUT
        return Status.CANCELLED if self is StopKind.CANCELLED else Status.FAILURE

    @property
    def title(self) -> str:
        """How the report's status line starts."""
        return {StopKind.TIMEOUT: "Timed out", StopKind.CANCELLED: "Cancelled"}.get(self, "Stopped")


def _now_ms() -> int:
    return int(time.time() * 1000)


class Task:
    """Runs one request; ``run`` returns its result, ``stop`` ends it early."""

    def __init__(self, request: ExecutionRequest, ctx: TaskContext) -> None:
        self.request = request
        self._ctx = ctx
        safe_id = "".join(c if c.isalnum() or c in "-_." else "_" for c in request.request_id)
        self.dir = ctx.work_dir / safe_id
        self.log_path = self.dir / "ingestion.log"
        self.report_path = self.dir / "report.json"
        self.tail = LogTail(ctx.report_max_chars)
        self.start_ms = _now_ms()
        self._notes: list[str] = []
        self._lock = threading.Lock()
        self._process: ProcessRun | None = None
        self._stop: tuple[StopKind, str] | None = None
        self.secret_seconds: float | None = None

    @property
    def timeout_seconds(self) -> float:
        """This task's limit: the request's own, or the executor's."""
        return self.request.timeout_seconds or self._ctx.timeout_seconds

    def run(self) -> TaskResult:
        """Prepare, resolve, run, and say how it ended."""
        self._reset_dir()
        try:
            prepared = prepare_recipe(self.request, self._default_sink())
            secrets = self._resolve_secrets()
        except RecipeError as exc:
            return self._failure(f"Bad recipe: {exc}")
        except SecretError as exc:
            return self._failure(f"Secret not resolved: {exc}. The subprocess was not started.")
        self._notes.extend(prepared.notes)
        self._note_cli_version()
        try:
            outcome = self._execute(prepared, secrets)
        except RunnerError as exc:
            return self._failure(
                f"{exc}. Install acryl-datahub in the worker's environment or set "
                "EXECUTOR_DATAHUB_COMMAND."
            )
        return self._result(outcome)

    def stop(self, kind: StopKind, reason: str) -> None:
        """Stop the subprocess if it runs (blocks up to the kill grace); the first reason wins.

        A task not yet started will not start.
        """
        with self._lock:
            if self._stop is None:
                self._stop = (kind, reason)
            process = self._process
        if process is not None:
            process.stop(reason, self._ctx.kill_grace_seconds)

    @property
    def stopped(self) -> tuple[StopKind, str] | None:
        """How and why ``stop`` was first called, if it was."""
        with self._lock:
            return self._stop

    def progress(self, lines: list[str] | None = None) -> TaskResult:
        """A RUNNING result with the log so far, for the periodic update."""
        return self._compose(Status.RUNNING, lines or ["Running."], structured=None)

    def shortened(self, result: TaskResult, why: str) -> TaskResult:
        """The result with only its status line, ``why`` and where the log is: for a GMS that
        refused the full one."""
        lines = result.report.splitlines()[:2]
        note = f"{why}. The full log and report are on the worker: {self.dir}"
        return result.model_copy(
            update={"report": "\n".join([*lines, note]), "structured_report": None}
        )

    @property
    def metadata_path(self) -> Path:
        """Where the file sink of ``executor exec`` writes the metadata."""
        return self.dir / "metadata.json"

    def _default_sink(self) -> dict[str, Any] | None:
        if self._ctx.gms_url:
            config: dict[str, Any] = {"server": self._ctx.gms_url}
            if self._ctx.token:
                config["token"] = f"${{{TOKEN_ENV}}}"
            return {"type": "datahub-rest", "config": config}
        if self._ctx.file_sink_when_no_gms:
            return {"type": "file", "config": {"filename": str(self.metadata_path)}}
        return None

    def _reset_dir(self) -> None:
        # A redelivered request starts clean: an old log would mislead.
        shutil.rmtree(self.dir, ignore_errors=True)
        (self.dir / "tmp").mkdir(parents=True)
        self.log_path.touch()

    def _resolve_secrets(self) -> Resolved:
        required, optional = find_references(self.request.recipe)
        provided = {*self.request.extra_env_vars, *self._ctx.base_env, TOKEN_ENV, SERVER_ENV}
        started = time.monotonic()
        resolved = self._ctx.secrets.resolve(required - provided, optional - provided)
        self.secret_seconds = time.monotonic() - started
        self._ctx.redactor.add(*resolved.values.values())
        return resolved

    def _note_cli_version(self) -> None:
        version = self.request.cli_version
        if version and version.lower() not in ("native", "default"):
            self._notes.append(
                f"The request asked for CLI version {version}; this executor runs the "
                "datahub CLI installed beside it."
            )
        if self.request.extra_pip_requirements:
            self._notes.append(
                "extra_pip_requirements were not installed: this executor does not install "
                "packages at run time; add them to the image."
            )

    def _environment(self, values: dict[str, str]) -> dict[str, str]:
        env = {
            **self._ctx.base_env,
            "TMPDIR": str(self.dir / "tmp"),
            "PYTHONUNBUFFERED": "1",
            "DATAHUB_ENABLE_SECRET_MASKING": "true",
        }
        if self._ctx.gms_url:
            env[SERVER_ENV] = self._ctx.gms_url
        return {**env, **self.request.extra_env_vars, **values}

    def _handed_over(self, resolved: Resolved) -> dict[str, str]:
        # Keyed by the variable the recipe reads; the token only for the sink's ${...}.
        values = {variable_name(name): value for name, value in resolved.values.items()}
        if self._ctx.token:
            values[TOKEN_ENV] = self._ctx.token
        return values

    def _argv(self, config_argument: str) -> list[str]:
        argv = list(self._ctx.datahub_command)
        if self.request.debug_mode:
            argv.append("--debug")
        # --report-to <file> alone keeps the CLI's default datahub reporter off; adding
        # --no-default-report would also drop the file report (CLI 1.x sets report_to=None).
        argv += ["ingest", "run", "-c", config_argument, "--report-to", str(self.report_path)]
        if self.request.task is TaskKind.TEST_CONNECTION:
            argv.append("--test-source-connection")
        return argv

    def _execute(self, prepared: PreparedRecipe, resolved: Resolved) -> RunOutcome:
        # The recipe on disk keeps its placeholders: it shows what ran, never a value.
        recipe_path = self.dir / "recipe.yml"
        recipe_path.write_text(prepared.text, encoding="utf-8")
        delivery = self._ctx.handoff.deliver(
            prepared.text, recipe_path, self._handed_over(resolved)
        )
        if resolved.values:
            self._notes.append(f"Secrets {resolved.describe()}, handed over {delivery.how}.")
        spec = RunSpec(
            self._argv(delivery.config_argument),
            self._environment(delivery.env),
            self.dir,
            self.log_path,
            stdin=delivery.stdin,
            memory_limit_mb=self._ctx.memory_limit_mb,
        )
        with self._lock:
            if self._stop is not None:
                return RunOutcome(None, None, 0.0, self._stop[1])
            self._process = process = ProcessRun(spec, self._ctx.redactor, self.tail)
        limit = self.timeout_seconds
        source = (
            "args.timeout_seconds of the request"
            if self.request.timeout_seconds
            else "EXECUTOR_TASK_TIMEOUT_SECONDS"
        )
        timer = threading.Timer(
            limit, self.stop, (StopKind.TIMEOUT, f"limit {limit:g} s, set by {source}")
        )
        timer.daemon = True
        timer.start()
        try:
            return process.wait()
        finally:
            timer.cancel()

    def _structured_report(self) -> str | None:
        try:
            raw = self.report_path.read_text(encoding="utf-8")
            json.loads(raw)
        except (OSError, ValueError):
            return None
        redacted = self._ctx.redactor.redact(raw)
        self.report_path.write_text(redacted, encoding="utf-8")
        return redacted

    def _result(self, outcome: RunOutcome) -> TaskResult:
        stopped = self.stopped
        if outcome.exit_code is None and outcome.signal_number is None:
            status = stopped[0].status if stopped else Status.FAILURE
            return self._compose(
                status, [f"Not started: {outcome.stopped_because}."], None, duration=True
            )
        structured = self._structured_report()
        if stopped is not None:
            status = stopped[0].status
            lines = [f"{stopped[0].title}: {outcome.describe()}."]
        elif outcome.succeeded:
            status, lines = Status.SUCCESS, [f"Succeeded: {outcome.describe()}."]
        else:
            status, lines = Status.FAILURE, [f"Failed: {outcome.describe()}."]
        if structured is None:
            lines.append("The CLI wrote no structured report.")
        return self._compose(status, lines, structured, duration=True)

    def _failure(self, reason: str) -> TaskResult:
        return self._compose(Status.FAILURE, [f"Failed: {reason}"], None, duration=True)

    def _compose(
        self, status: Status, lines: list[str], structured: str | None, duration: bool = False
    ) -> TaskResult:
        header = [
            f"~~~~ {self.request.task.value} on remote-executor {__version__}, "
            f"worker {self._ctx.worker_id} ~~~~",
            *lines,
            *self._notes,
            f"Full log on the worker: {self.log_path}",
        ]
        composed = compose_report(
            [self._ctx.redactor.redact(line) for line in header],
            self.tail.text(),
            structured,
            self._ctx.report_max_chars,
        )
        return TaskResult(
            status=status,
            report=composed.report,
            structured_report=composed.structured_report,
            start_time_ms=self.start_ms,
            duration_ms=_now_ms() - self.start_ms if duration else None,
            task=self.request.task,
        )
