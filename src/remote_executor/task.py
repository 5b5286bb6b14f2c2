"""One request, from recipe to result: the path shared by the worker and ``executor exec``.

Order matters: the recipe is checked (including which of the executor's names it may
read, see ``runspec``) and every ``${NAME}`` resolved before the subprocess starts, so
a bad recipe or a missing secret ends the task at once with a reason, and nothing
runs half-configured. Any other exception on the way ends the task FAILURE with its
text too: a task never ends without a result.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import structlog

from remote_executor import __version__, runspec
from remote_executor.capture import LogTail
from remote_executor.cli_env import PhaseLog, environment_ask
from remote_executor.context import StopKind, TaskContext, start_timer
from remote_executor.errors import RecipeError, RunnerError, SecretError, VenvError
from remote_executor.models import ExecutionRequest, Status, TaskResult
from remote_executor.notes import unmet_asks
from remote_executor.recipe import PreparedRecipe, default_sink, prepare_recipe
from remote_executor.report import compose_report
from remote_executor.runner import ProcessRun, RunOutcome
from remote_executor.runrecord import RunRecord
from remote_executor.secrets import Resolved, variable_name
from remote_executor.secrets.references import find_references
from remote_executor.venvs import Cancelled, Chosen, Stopper
from remote_executor.workspace import TaskWorkspace

log = structlog.get_logger("remote_executor.task")


def _now_ms() -> int:
    return int(time.time() * 1000)


class Task:
    """Runs one request; ``run`` returns its result, ``stop`` ends it early.

    ``record`` is the run this task is (attempt, worker instance, heartbeat) when a
    worker runs it; ``executor exec`` has none.
    """

    def __init__(
        self, request: ExecutionRequest, ctx: TaskContext, record: RunRecord | None = None
    ) -> None:
        self.request = request
        self._ctx = ctx
        self.record = record
        attempt = record.attempt if record else 1
        self.workspace = TaskWorkspace(ctx.work_dir, request.request_id, attempt)
        self.tail = LogTail(ctx.report_max_chars)
        self.start_ms = _now_ms()
        self._notes: list[str] = []
        self._lock = threading.Lock()
        self._process: ProcessRun | None = None
        self._installs = Stopper()
        self._stop: tuple[StopKind, str] | None = None
        self.secret_seconds: float | None = None
        self.leftovers_killed = 0

    @property
    def identity(self) -> str:
        """Request urn plus run number: what keys this run everywhere."""
        return f"{self.request.urn}#{self.record.attempt if self.record else 1}"

    @property
    def dir(self) -> Path:
        """The task's directory."""
        return self.workspace.dir

    @property
    def log_path(self) -> Path:
        """The full, redacted log."""
        return self.workspace.log_path

    @property
    def report_path(self) -> Path:
        """Where the CLI writes its structured report."""
        return self.workspace.report_path

    @property
    def metadata_path(self) -> Path:
        """Where the file sink of ``executor exec`` writes the metadata."""
        return self.workspace.metadata_path

    @property
    def timeout_seconds(self) -> float:
        """This task's limit: the request's own (within the cap), or the executor's."""
        requested = self.request.timeout_seconds
        if requested:
            return min(requested, self._ctx.max_timeout_seconds)
        return self._ctx.timeout_seconds

    def run(self) -> TaskResult:
        """Prepare, resolve, run, and say how it ended; never raises."""
        try:
            self.workspace.reset()
            return self._run()
        except Exception as exc:  # every failure is a result, on the first attempt
            log.exception("task failed unexpectedly", request_urn=self.request.urn)
            return self._failure(f"unexpected error in the executor: {type(exc).__name__}: {exc}")
        finally:
            self._close_workspace()

    def _run(self) -> TaskResult:
        try:
            prepared = prepare_recipe(
                self.request,
                default_sink(self._ctx.gms_url, self._ctx.token, self._file_sink()),
            )
            runspec.check_extra_env(self.request.extra_env_vars, self._ctx.reserved)
            needs_token = runspec.check_recipe(
                prepared.text, self.request.recipe, self._ctx.reserved
            )
            secrets = self._resolve_secrets(needs_token)
        except RecipeError as exc:
            return self._failure(f"Recipe error: {exc}")
        except SecretError as exc:
            return self._failure(f"Secret not resolved: {exc}. The subprocess was not started.")
        self._notes.extend(prepared.notes)
        self._notes.extend(unmet_asks(self.request, self._ctx.max_timeout_seconds))
        # The install counts against the timeout too.
        timer = start_timer(self.timeout_seconds, bool(self.request.timeout_seconds), self.stop)
        try:
            phase = PhaseLog(self.log_path, self.tail, self._ctx.redactor)
            ask = environment_ask(self.request, prepared)
            with self._ctx.environments.provide(ask, phase.say, self._installs) as chosen:
                self._notes.append(chosen.note)
                outcome = self._execute(prepared, secrets, needs_token, chosen)
        except VenvError as exc:
            return self._failure(f"CLI environment: {exc}")
        except Cancelled as exc:
            kind = self.stopped[0] if self.stopped else StopKind.SHUTDOWN
            lines = [f"{kind.title} while preparing the CLI environment: {exc}."]
            return self._compose(kind.status, lines, None, duration=True)
        except RunnerError as exc:
            return self._failure(
                f"{exc}. Install acryl-datahub in the worker's environment or set "
                "EXECUTOR_DATAHUB_COMMAND."
            )
        finally:
            timer.cancel()
        return self._result(outcome)

    def _close_workspace(self) -> None:
        try:
            self.workspace.finish()
        except OSError as exc:
            log.warning("could not tidy the task directory", dir=str(self.dir), error=str(exc))

    def stop(self, kind: StopKind, reason: str) -> None:
        """Stop the subprocess if it runs (blocks up to the kill grace); the first reason wins.

        A task not yet started will not start.
        """
        with self._lock:
            if self._stop is None:
                self._stop = (kind, reason)
            process = self._process
        self._installs.stop(reason)
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
        """The result with only its status lines, ``why`` and where the log is: for a GMS
        that refused the full one."""
        lines = result.report.splitlines()[: 3 if self.record else 2]
        note = f"{why}. The full log and report are on the worker: {self.dir}"
        return result.model_copy(
            update={"report": "\n".join([*lines, note]), "structured_report": None}
        )

    def _file_sink(self) -> Path | None:
        return self.metadata_path if self._ctx.file_sink_when_no_gms else None

    def _resolve_secrets(self, needs_token: bool) -> Resolved:
        required, optional = find_references(self.request.recipe)
        provided = runspec.provided_names(self.request.extra_env_vars, needs_token)
        started = time.monotonic()
        resolved = self._ctx.secrets.resolve(required - provided, optional - provided)
        self.secret_seconds = time.monotonic() - started
        self._ctx.redactor.add(*resolved.values.values())
        return resolved

    def _execute(
        self, prepared: PreparedRecipe, resolved: Resolved, needs_token: bool, cli: Chosen
    ) -> RunOutcome:
        # The recipe on disk keeps its placeholders: it shows what ran, never a value.
        self.workspace.recipe_path.write_text(prepared.text, encoding="utf-8")
        delivery = self._ctx.handoff.deliver(
            prepared.text,
            self.workspace.recipe_path,
            runspec.handed_values(
                {variable_name(n): v for n, v in resolved.values.items()},
                self._ctx.token if needs_token else None,
            ),
            cli.command,
        )
        if resolved.values:
            self._notes.append(f"Secrets {resolved.describe()}, handed over {delivery.how}.")
        invocation = runspec.Invocation(
            cli.command,
            self.request.task,
            self.request.debug_mode,
            delivery.config_argument,
            self.report_path,
        )
        env = runspec.environment(
            self._ctx.base_env,
            self.request.extra_env_vars,
            runspec.own_variables(
                self.workspace.tmp_dir,
                self._ctx.gms_url,
                cli.bin_dir,
                self._ctx.base_env.get("PATH", ""),
            ),
            delivery.env,
        )
        log_max = self._ctx.log_max_mb
        spec = runspec.run_spec(
            invocation,
            env,
            cwd=self.dir,
            log_path=self.log_path,
            stdin=delivery.stdin,
            memory_limit_mb=self._ctx.memory_limit_mb,
            identity=self.identity,
            log_max_bytes=log_max * 1024 * 1024 if log_max else None,
        )
        with self._lock:
            if self._stop is not None:
                return RunOutcome(None, None, 0.0, self._stop[1])
            self._process = process = ProcessRun(spec, self._ctx.redactor, self.tail)
        outcome = process.wait()
        self.leftovers_killed = outcome.leftovers_killed
        return outcome

    def _result(self, outcome: RunOutcome) -> TaskResult:
        stopped = self.stopped
        if outcome.exit_code is None and outcome.signal_number is None:
            status = stopped[0].status if stopped else Status.FAILURE
            return self._compose(
                status, [f"Not started: {outcome.stopped_because}."], None, duration=True
            )
        structured = self.workspace.structured_report(self._ctx.redactor)
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
        redacted = [self._ctx.redactor.redact(line) for line in header]
        if self.record is not None:  # the executor's own line, read back by runrecord
            redacted.insert(1, self.record.line())
        composed = compose_report(
            redacted,
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


__all__ = ["StopKind", "Task", "TaskContext"]
