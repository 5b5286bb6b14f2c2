"""The worker loop: receive while slots are free, decide, run, report, acknowledge.

Every message ends in one explicit outcome (see ``outcome``): acknowledge
(delete), release (visible again, possibly after a delay), or dead-letter
(moved aside with the reason). ``intake`` decides whether a message's request
may run; this module runs it, keeps its lease, watches for cancel, drains on
shutdown, and deletes the message only after GMS accepted the terminal result.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import structlog

from remote_executor import __version__
from remote_executor.errors import (
    GmsAuthError,
    GmsError,
    GmsRejectedError,
    GmsUnavailableError,
    QueueError,
)
from remote_executor.gms import Reporter
from remote_executor.health import Metrics
from remote_executor.intake import Intake
from remote_executor.models import ExecutionRequest, TaskResult
from remote_executor.outcome import Decision, Outcome, end_message
from remote_executor.queue.base import MAX_VISIBILITY_SECONDS, Lease, Queue
from remote_executor.queue.lease import LeaseKeeper
from remote_executor.slots import Slots
from remote_executor.task import StopKind, Task, TaskContext
from remote_executor.watch import CancelWatcher, ProgressUpdater

log = structlog.get_logger("remote_executor.worker")


@dataclass(frozen=True)
class WorkerConfig:
    """The worker's own knobs (the rest lives in TaskContext)."""

    worker_id: str
    max_concurrent_tasks: int = 4
    lease_seconds: int = 300
    report_interval_seconds: float = 5.0
    poll_wait_seconds: int = 20
    foreign_visibility_seconds: int = 30
    max_attempts: int = 3
    shutdown_grace_seconds: float = 100.0
    signal_poll_seconds: float = 3.0
    # How long a message released after a GMS failure stays invisible.
    retry_delay_seconds: int = 30
    # While GMS refuses the token, how often to ask again.
    token_recheck_seconds: float = 60.0
    max_visibility_seconds: float = MAX_VISIBILITY_SECONDS


class Worker:
    """Runs up to N tasks at once from one queue, reporting to GMS."""

    def __init__(
        self,
        queue: Queue,
        reporter: Reporter,
        context: TaskContext,
        config: WorkerConfig,
        metrics: Metrics | None = None,
    ) -> None:
        self._queue = queue
        self._reporter = reporter
        self._context = context
        self._config = config
        self._keeper = LeaseKeeper(
            queue, config.lease_seconds, self._lease_lost, config.max_visibility_seconds
        )
        self._intake = Intake(
            reporter,
            config.worker_id,
            foreign_visibility_seconds=config.foreign_visibility_seconds,
            max_attempts=config.max_attempts,
            retry_delay_seconds=config.retry_delay_seconds,
        )
        self._watcher = CancelWatcher(
            reporter, config.signal_poll_seconds, self._cancel, self._refused
        )
        self._pool = ThreadPoolExecutor(config.max_concurrent_tasks, thread_name_prefix="task")
        self._slots = Slots(config.max_concurrent_tasks)
        self._stopping = threading.Event()
        self._forced = threading.Event()
        self._grace_timer: threading.Timer | None = None
        self._token_refused = threading.Event()
        self._tasks: dict[str, Task] = {}
        self._lock = threading.Lock()
        self._heartbeat = time.monotonic()
        self._receive_error: str | None = None
        self.metrics = metrics or Metrics()
        self.metrics.running.set_function(lambda: len(self._tasks))
        self.metrics.free_slots.set_function(lambda: self._slots.free)

    @property
    def ready(self) -> bool:
        """Taking work: not stopping, and GMS accepts the token."""
        return self.not_ready_because is None

    @property
    def not_ready_because(self) -> str | None:
        """Why the worker takes no new work, or None when it does."""
        if self._stopping.is_set():
            return "draining: the worker is stopping"
        if self._token_refused.is_set():
            return "GMS refuses the executor's token"
        return None

    @property
    def seconds_since_tick(self) -> float:
        """How long ago the receive loop last went round (liveness); 0 while draining.

        A drain stops the loop on purpose and is bounded by the shutdown and kill graces,
        so a probe must not restart the worker in the middle of handing its work back.
        """
        if self._stopping.is_set():
            return 0.0
        return time.monotonic() - self._heartbeat

    def check_queue(self) -> None:
        """QueueError if the last receive failed.

        The receive loop is the readiness check of the queue, so that readiness costs no
        SQS call of its own: an idle worker makes three calls a minute, its long polls.
        """
        error = self._receive_error
        if error is not None:
            raise QueueError(error)

    def stop(self, force: bool = False) -> None:
        """Drain: stop receiving; running tasks get the shutdown grace, then are stopped.

        With ``force`` (a second signal), running tasks are stopped at once. Stopped
        tasks' messages are released for a retry by another worker.
        """
        with self._lock:
            first = not self._stopping.is_set()
            self._stopping.set()
        if first:
            grace = self._config.shutdown_grace_seconds
            log.info("draining: no new work", running=len(self._tasks), grace_seconds=grace)
            self._grace_timer = threading.Timer(
                grace, self._stop_running, (f"the shutdown grace of {grace:g} s ran out",)
            )
            self._grace_timer.daemon = True
            self._grace_timer.start()
        if force:
            self._stop_running("a second stop signal")

    def _stop_running(self, why: str) -> None:
        self._forced.set()
        with self._lock:
            tasks = list(self._tasks.values())
        if tasks:
            log.warning("stopping running tasks", count=len(tasks), because=why)
        for task in tasks:
            self._stop_task(task, StopKind.SHUTDOWN, f"worker shutting down: {why}")

    @staticmethod
    def _stop_task(task: Task, kind: StopKind, reason: str) -> None:
        # Task.stop waits out the kill grace: never block the caller's thread with it.
        threading.Thread(target=task.stop, args=(kind, reason), daemon=True).start()

    def run(self) -> None:
        """Receive and run until ``stop``; then wait for the running tasks."""
        log.info(
            "Starting remote executor worker",
            worker_id=self._config.worker_id,
            queue=self._queue.url,
            dead_letter_queue=self._queue.dead_letter_url,
            version=__version__,
            max_concurrent_tasks=self._config.max_concurrent_tasks,
        )
        self._keeper.start()
        self._watcher.start()
        try:
            while not self._stopping.is_set():
                self._heartbeat = time.monotonic()
                if self._token_refused.is_set():
                    self._wait_for_token()
                else:
                    self._receive_once()
        finally:
            self._pool.shutdown(wait=True)
            if self._grace_timer is not None:
                self._grace_timer.cancel()
            self._keeper.stop()
            self._watcher.stop()
            log.info("worker stopped", worker_id=self._config.worker_id)

    def _refused(self, exc: GmsAuthError) -> None:
        if not self._token_refused.is_set():
            log.error(
                "GMS refuses the executor's token: taking no new work until it is accepted; "
                "check DATAHUB_GMS_TOKEN",
                error=str(exc),
                recheck_seconds=self._config.token_recheck_seconds,
            )
        self._token_refused.set()

    def _wait_for_token(self) -> None:
        deadline = time.monotonic() + self._config.token_recheck_seconds
        while time.monotonic() < deadline:  # ticking: waiting for a token is not stuck
            self._heartbeat = time.monotonic()
            if self._stopping.wait(min(1.0, max(0.0, deadline - time.monotonic()))):
                return
        try:
            self._reporter.check_token()
        except GmsAuthError:
            return
        except GmsError as exc:
            log.warning("cannot check the token yet", error=str(exc))
            return
        log.info("GMS accepts the token again: taking work")
        self._token_refused.clear()

    def _receive_once(self) -> None:
        free = 0
        while free < self._config.max_concurrent_tasks and self._slots.take():
            free += 1
        if free == 0:
            # Poll only with a free slot: wait for one, briefly, so stop stays responsive.
            if not self._slots.take(timeout=1.0):
                return
            free = 1
        try:
            # A poll in flight is never abandoned: a consumer that leaves mid-poll can still
            # be handed a message, which would then stay invisible for its whole lease.
            leases = self._queue.receive(
                free, self._config.poll_wait_seconds, self._config.lease_seconds
            )
            self._receive_error = None
        except QueueError as exc:
            self.metrics.aws_errors.inc()
            log.error("receive failed", error=str(exc))
            self._receive_error = str(exc)
            leases = []
            self._stopping.wait(5.0)
        for lease in leases:
            # At debug: with its timestamp, where each task's time goes (see bench/).
            log.debug("message received", message_id=lease.message_id)
            self.metrics.observe_sent(lease.sent_ms)
            if not self.ready:
                end_message(
                    self._queue, lease, Decision(Outcome.RELEASE, "worker is not taking work")
                )
                self._slots.give()
                continue
            self._pool.submit(self._process, lease)
        for _ in range(free - len(leases)):
            self._slots.give()

    def _process(self, lease: Lease) -> None:
        try:
            decision = self._decide(lease)
        except Exception as exc:  # a bug must not kill the slot or lose the message
            log.exception("unexpected error handling message", message_id=lease.message_id)
            decision = Decision(Outcome.RELEASE, f"unexpected error: {exc}")
        finally:
            self._keeper.drop(lease)
            self._slots.give()
        end_message(self._queue, lease, decision)

    def _decide(self, lease: Lease) -> Decision:
        try:
            admitted = self._intake.admit(lease)
            if isinstance(admitted, Decision):
                return admitted
            if self._stopping.is_set():
                return Decision(Outcome.RELEASE, "worker is stopping")
            return self._run(admitted, lease)
        except GmsAuthError as exc:
            self._refused(exc)
            return Decision(Outcome.RELEASE, f"GMS refuses the token: {exc}")

    def _run(self, request: ExecutionRequest, lease: Lease) -> Decision:
        bound = log.bind(request_urn=request.urn, task=request.task.value)
        try:
            self._keeper.secure(lease)
        except QueueError as exc:
            self.metrics.aws_errors.inc()
            bound.error("could not extend the lease; not started", error=str(exc))
            return self._intake.retry_later(f"lease not extended, not started: {exc}")
        task = Task(request, self._context)
        with self._lock:
            self._tasks[lease.message_id] = task
        self._watcher.watch(task)
        try:
            return self._execute(task, bound)
        finally:
            self._watcher.forget(task)
            with self._lock:
                self._tasks.pop(lease.message_id, None)

    def _execute(self, task: Task, bound: structlog.typing.FilteringBoundLogger) -> Decision:
        urn = task.request.urn
        try:
            self._reporter.report(urn, task.progress())
        except GmsAuthError:
            raise
        except GmsError as exc:
            self.metrics.gms_errors.inc()
            bound.warning("RUNNING report failed; running anyway", error=str(exc))
        bound.info("task started", timeout_seconds=task.timeout_seconds)
        with ProgressUpdater(task, self._reporter, self._config.report_interval_seconds):
            result = task.run()
        stopped = task.stopped
        if stopped is not None and stopped[0] is StopKind.SHUTDOWN:
            return self._released_by_shutdown(task, stopped[1], bound)
        bound.info("task finished", status=result.status.value, log=str(task.log_path))
        self.metrics.finished.labels(result.status.value).inc()
        self.metrics.duration.observe((result.duration_ms or 0) / 1000)
        if task.secret_seconds is not None:
            self.metrics.secret_fetch.observe(task.secret_seconds)
        return self._report_final(task, result, bound)

    def _released_by_shutdown(
        self, task: Task, reason: str, bound: structlog.typing.FilteringBoundLogger
    ) -> Decision:
        bound.warning("task stopped by shutdown; released for a retry", reason=reason)
        note = f"Stopped by {reason}. The request was released for a retry by another worker."
        try:
            self._reporter.report(task.request.urn, task.progress([note]))
        except GmsError as exc:
            bound.warning("could not note the shutdown in GMS", error=str(exc))
        return Decision(Outcome.RELEASE, "stopped by worker shutdown")

    def _report_final(
        self, task: Task, result: TaskResult, bound: structlog.typing.FilteringBoundLogger
    ) -> Decision:
        """Write the terminal result. The work is done and a release would run it again, so
        while GMS is down or refuses the token this keeps trying, with the lease kept, until
        a forced stop; a result GMS refuses is sent once more without the log and reports."""
        delay = 1.0
        shortened = False
        while True:
            try:
                self._reporter.report(task.request.urn, result)
            except (GmsUnavailableError, GmsAuthError) as exc:
                self.metrics.gms_errors.inc()
                if isinstance(exc, GmsAuthError):
                    self._refused(exc)
                if self._forced.is_set():
                    return Decision(Outcome.RELEASE, f"final report not accepted: {exc}")
                bound.error("final report not accepted yet; retrying", error=str(exc))
                self._forced.wait(delay)
                delay = min(delay * 2, 60.0)
                continue
            except GmsRejectedError as exc:
                self.metrics.gms_errors.inc()
                if shortened:
                    return self._intake.retry_later(f"final report refused: {exc}")
                bound.error("GMS refused the final report; sending a short one", error=str(exc))
                result = task.shortened(result, f"GMS refused the full report: {exc}")
                shortened = True
                continue
            return Decision(Outcome.ACKNOWLEDGE, result.status.value)

    def _cancel(self, task: Task, reason: str) -> None:
        log.warning("cancelling task", request_urn=task.request.urn, reason=reason)
        self._stop_task(task, StopKind.CANCELLED, reason)

    def _lease_lost(self, lease: Lease, reason: str) -> None:
        with self._lock:
            task = self._tasks.get(lease.message_id)
        if task is not None:
            self._stop_task(
                task,
                StopKind.LEASE_LOST,
                f"the message's lease was lost ({reason}); stopped so that no second copy "
                "runs beside this one",
            )
