"""The path of one message, from lease to decision: the worker's ``perform_job``.

1. ``Intake.parse``: decode, and one read of the request's result, signal and input in
   GMS; bad or foreign messages, and those for a request GMS does not know, end here.
2. Claim the urn in this worker's table: a second copy received while one runs here is
   released with a delay.
3. ``Intake.preflight``: from the state read in 1, finished, cancelled,
   running elsewhere or out of attempts ends here. Otherwise a new run record.
4. Secure the lease, write RUNNING with the run record (``ResultWriter.claim``), and
   only then start the task, with its heartbeat, its cancel watch and its lease kept.
5. The final write, whose policy is ``ResultWriter``'s, decides the message's end.

One identity, the request urn plus the run number, keys the task's directory, its
entry in the table, its watch and its heartbeat. Any exception on this path ends the
request FAILURE with its text, on the first attempt.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog

from remote_executor.config import WorkerConfig
from remote_executor.errors import GmsAuthError, GmsError, QueueError
from remote_executor.health import Metrics
from remote_executor.intake import Admitted, Intake
from remote_executor.messages import urn_of
from remote_executor.models import ExecutionRequest
from remote_executor.outcome import Decision, Outcome
from remote_executor.queue.base import Lease
from remote_executor.queue.lease import LeaseKeeper
from remote_executor.results import ResultWriter
from remote_executor.runrecord import RunRecord
from remote_executor.task import StopKind, Task, TaskContext
from remote_executor.watch import CancelWatcher
from remote_executor.workspace import prune

log = structlog.get_logger("remote_executor.worker")
BoundLog = structlog.typing.FilteringBoundLogger


class Performer:
    """Runs messages to their decision; keeps the table of what runs on this worker."""

    def __init__(
        self,
        context: TaskContext,
        config: WorkerConfig,
        *,
        intake: Intake,
        keeper: LeaseKeeper,
        watcher: CancelWatcher,
        writer: ResultWriter,
        metrics: Metrics,
        stopping: threading.Event,
        on_refused: Callable[[GmsAuthError], None],
    ) -> None:
        self._context = context
        self._config = config
        self._intake = intake
        self._keeper = keeper
        self._watcher = watcher
        self._writer = writer
        self._metrics = metrics
        self._stopping = stopping
        self._on_refused = on_refused
        self._lock = threading.Lock()
        self._claimed: set[str] = set()
        self._tasks: dict[str, tuple[Task, Lease]] = {}

    @property
    def running(self) -> list[Task]:
        """The tasks running now."""
        with self._lock:
            return [task for task, _ in self._tasks.values()]

    def task_of(self, lease: Lease) -> Task | None:
        """The task that holds this lease, if one runs."""
        with self._lock:
            for task, held in self._tasks.values():
                if held.message_id == lease.message_id:
                    return task
        return None

    def perform(self, lease: Lease) -> Decision:
        """Decide, and run if the decision is to run; never raises."""
        admitted = self._parse(lease)
        if isinstance(admitted, Decision):
            return admitted
        parsed = admitted.request
        urn = parsed.urn
        with self._lock:
            if urn in self._claimed:
                log.warning("a copy of a request running here; released", request_urn=urn)
                return self._intake.retry_later("a copy of this request runs on this worker", lease)
            self._claimed.add(urn)
        try:
            return self._admitted(admitted, lease)
        except GmsAuthError as exc:
            return self._refused(exc)
        except Exception as exc:  # every failure is a result, on the first attempt
            log.exception("unexpected error running a request", request_urn=urn)
            return self._intake.fail(lease, urn, _unexpected(exc))
        finally:
            with self._lock:
                self._claimed.discard(urn)

    def _refused(self, exc: GmsAuthError) -> Decision:
        # Released at once, the one release without a delay: this worker takes nothing
        # more until GMS accepts its token, so no loop forms, and a worker whose token
        # is good may run the request now.
        self._on_refused(exc)
        return Decision(Outcome.RELEASE, f"GMS refuses the token: {exc}")

    def _parse(self, lease: Lease) -> Admitted | Decision:
        try:
            return self._intake.parse(lease)
        except GmsAuthError as exc:
            return self._refused(exc)
        except Exception as exc:  # a bug must not lose the message, nor loop it at once
            log.exception("unexpected error reading a message", message_id=lease.message_id)
            urn = urn_of(lease.body)
            if urn is None:
                return self._intake.retry_later(f"unexpected error: {exc}", lease)
            return self._intake.fail(lease, urn, _unexpected(exc))

    def _admitted(self, admitted: Admitted, lease: Lease) -> Decision:
        if self._stopping.is_set():
            return Decision(Outcome.RELEASE, "worker is stopping")
        request = admitted.request
        planned = self._intake.preflight(admitted, lease)
        if isinstance(planned, Decision):
            return planned
        if self._stopping.is_set():
            return Decision(Outcome.RELEASE, "worker is stopping")
        return self._run(request, planned, lease)

    def _run(self, request: ExecutionRequest, record: RunRecord, lease: Lease) -> Decision:
        bound = log.bind(request_urn=request.urn, task=request.task.value, run=record.attempt)
        try:
            self._keeper.secure(lease)
        except QueueError as exc:
            self._metrics.aws_errors.inc()
            bound.error("could not extend the lease; not started", error=str(exc))
            return self._intake.retry_later(f"lease not extended, not started: {exc}", lease)
        task = Task(request, self._context, record)
        try:
            self._writer.claim(task)
        except GmsAuthError:
            raise
        except GmsError as exc:
            self._metrics.gms_errors.inc()
            bound.error("RUNNING not accepted; not started", error=str(exc))
            return self._intake.retry_later(f"RUNNING not accepted, not started: {exc}", lease)
        with self._lock:
            self._tasks[task.identity] = (task, lease)
        self._watcher.watch(task)
        try:
            return self._execute(task, bound)
        finally:
            self._watcher.forget(task)
            with self._lock:
                self._tasks.pop(task.identity, None)
                active = [t.workspace.name for t, _ in self._tasks.values()]
            prune(self._context.work_dir, self._config.keep_task_dirs, active)

    def _execute(self, task: Task, bound: BoundLog) -> Decision:
        bound.info("task started", timeout_seconds=task.timeout_seconds)
        with self._writer.heartbeat(task):
            result = task.run()
        stopped = task.stopped
        if stopped is not None and stopped[0] is StopKind.SHUTDOWN:
            bound.warning("task stopped by shutdown; released for a retry", reason=stopped[1])
            self._writer.released(
                task,
                f"Stopped by {stopped[1]}. The request was released for a retry by another worker.",
            )
            return Decision(Outcome.RELEASE, "stopped by worker shutdown")
        bound.info("task finished", status=result.status.value, log=str(task.log_path))
        self._metrics.finished.labels(result.status.value).inc()
        self._metrics.duration.observe((result.duration_ms or 0) / 1000)
        if task.secret_seconds is not None:
            self._metrics.secret_fetch.observe(task.secret_seconds)
        self._metrics.leftover_processes_killed.inc(task.leftovers_killed)
        lost = stopped is not None and stopped[0] is StopKind.LEASE_LOST
        if lost and not self._writer.still_ours(task):
            bound.error(
                "lease lost and the request is no longer this run's; no result written "
                "over its owner's"
            )
            return Decision(Outcome.RELEASE, "lease lost; the result is another run's")
        return self._writer.final(task, result)

    def cancel(self, task: Task, reason: str) -> None:
        """A KILL for this task."""
        log.warning("cancelling task", request_urn=task.request.urn, reason=reason)
        stop_task(task, StopKind.CANCELLED, reason)

    def lease_lost(self, lease: Lease, reason: str) -> None:
        """The lease of a running task cannot be kept: stop it before a copy can start."""
        task = self.task_of(lease)
        if task is not None:
            stop_task(
                task,
                StopKind.LEASE_LOST,
                f"the message's lease was lost ({reason}); stopped so that no second copy "
                "runs beside this one",
            )


def _unexpected(exc: Exception) -> str:
    return f"Failed: unexpected error in the executor: {type(exc).__name__}: {exc}"


def stop_task(task: Task, kind: StopKind, reason: str) -> None:
    """Stop a task from a thread of its own: Task.stop waits out the kill grace."""
    threading.Thread(target=task.stop, args=(kind, reason), daemon=True).start()
