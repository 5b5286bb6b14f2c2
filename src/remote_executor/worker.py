"""The worker loop: receive while slots are free, decide, run, report, acknowledge.

Every message ends in one explicit outcome, decided in ``_decide`` and applied
in ``_apply``: acknowledge (delete), or release (visible again, possibly after
a delay). A message is deleted only after GMS accepted its terminal result.
"""

from __future__ import annotations

import enum
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import structlog

from remote_executor import __version__
from remote_executor.errors import ExecutorError, GmsError, MessageError, QueueError
from remote_executor.gms import Reporter
from remote_executor.messages import parse_envelope, parse_input
from remote_executor.models import ExecutionRequest, Status, TaskResult
from remote_executor.queue.base import Lease, Queue
from remote_executor.queue.lease import LeaseKeeper
from remote_executor.task import Task, TaskContext

log = structlog.get_logger("remote_executor.worker")


class Outcome(enum.Enum):
    """How a message ends."""

    ACKNOWLEDGE = "acknowledge"
    RELEASE = "release"


@dataclass(frozen=True)
class Decision:
    """An outcome, with the delay before a released message is visible again."""

    outcome: Outcome
    reason: str
    delay_seconds: int = 0


@dataclass(frozen=True)
class WorkerConfig:
    """The worker's own knobs (the rest lives in TaskContext)."""

    worker_id: str
    max_concurrent_tasks: int = 4
    lease_seconds: int = 300
    report_interval_seconds: float = 5.0
    poll_wait_seconds: int = 20
    foreign_visibility_seconds: int = 30


class ProgressUpdater:
    """Reports RUNNING with the log tail while the log grows; stopped before the final write."""

    def __init__(self, task: Task, reporter: Reporter, interval_seconds: float) -> None:
        self._task = task
        self._reporter = reporter
        self._interval = interval_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="progress", daemon=True)

    def __enter__(self) -> ProgressUpdater:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        # Joining waits out a report in flight, so no RUNNING can land after the end.
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        seen = self._task.tail.version
        while not self._stop.wait(self._interval):
            if self._task.tail.version == seen:
                continue
            seen = self._task.tail.version
            try:
                self._reporter.report(self._task.request.urn, self._task.progress())
            except GmsError as exc:
                log.warning("progress report failed", error=str(exc))


class Worker:
    """Runs up to N tasks at once from one queue, reporting to GMS."""

    def __init__(
        self, queue: Queue, reporter: Reporter, context: TaskContext, config: WorkerConfig
    ) -> None:
        self._queue = queue
        self._reporter = reporter
        self._context = context
        self._config = config
        self._keeper = LeaseKeeper(queue, config.lease_seconds)
        self._pool = ThreadPoolExecutor(config.max_concurrent_tasks, thread_name_prefix="task")
        self._slots = threading.Semaphore(config.max_concurrent_tasks)
        self._stopping = threading.Event()
        self._tasks: dict[str, Task] = {}
        self._lock = threading.Lock()

    def stop(self, force: bool = False) -> None:
        """Stop receiving; with ``force``, also stop running tasks and release their messages."""
        self._stopping.set()
        if force:
            with self._lock:
                tasks = list(self._tasks.values())
            for task in tasks:
                task.stop("worker shutting down")

    def run(self) -> None:
        """Receive and run until ``stop``; then wait for the running tasks."""
        log.info(
            "Starting remote executor worker",
            worker_id=self._config.worker_id,
            queue=self._queue.url,
            version=__version__,
            max_concurrent_tasks=self._config.max_concurrent_tasks,
        )
        self._keeper.start()
        try:
            while not self._stopping.is_set():
                self._receive_once()
        finally:
            self._pool.shutdown(wait=True)
            self._keeper.stop()
            log.info("worker stopped", worker_id=self._config.worker_id)

    def _receive_once(self) -> None:
        free = 0
        while free < self._config.max_concurrent_tasks and self._slots.acquire(blocking=False):
            free += 1
        if free == 0:
            # Poll only with a free slot: wait for one, briefly, so stop stays responsive.
            if not self._slots.acquire(timeout=1.0):
                return
            free = 1
        try:
            leases = self._queue.receive(
                free, self._config.poll_wait_seconds, self._config.lease_seconds
            )
        except QueueError as exc:
            log.error("receive failed", error=str(exc))
            leases = []
            self._stopping.wait(5.0)
        for lease in leases:
            if self._stopping.is_set():
                self._end(lease, Decision(Outcome.RELEASE, "worker is stopping"))
                self._slots.release()
                continue
            self._keeper.hold(lease)
            self._pool.submit(self._process, lease)
        for _ in range(free - len(leases)):
            self._slots.release()

    def _process(self, lease: Lease) -> None:
        try:
            decision = self._decide(lease)
        except Exception as exc:  # a bug must not kill the slot or lose the message
            log.exception("unexpected error handling message", message_id=lease.message_id)
            decision = Decision(Outcome.RELEASE, f"unexpected error: {exc}")
        finally:
            self._keeper.drop(lease)
            self._slots.release()
        self._end(lease, decision)

    def _end(self, lease: Lease, decision: Decision) -> None:
        try:
            if decision.outcome is Outcome.ACKNOWLEDGE:
                self._queue.delete(lease)
            else:
                self._queue.release(lease, decision.delay_seconds)
        except QueueError as exc:
            log.error("could not end message", message_id=lease.message_id, error=str(exc))
        log.info(
            "message ended",
            message_id=lease.message_id,
            outcome=decision.outcome.value,
            reason=decision.reason,
        )

    def _decide(self, lease: Lease) -> Decision:
        try:
            envelope = parse_envelope(lease.body)
            value = envelope.input
            if value is None:
                value = self._reporter.read_input(envelope.urn)
                if value is None:
                    raise MessageError(
                        "message was truncated and GMS has no input for it", envelope.urn
                    )
            request = parse_input(envelope.urn, value)
        except MessageError as exc:
            return self._reject(lease, exc)
        except GmsError as exc:
            return Decision(Outcome.RELEASE, f"could not read the truncated input: {exc}", 30)
        if request.executor_id != self._config.worker_id:
            log.warning(
                "message for another executor left for its owner",
                request_urn=request.urn,
                executor_id=request.executor_id,
            )
            return Decision(
                Outcome.RELEASE,
                f"executorId is {request.executor_id!r}, not ours",
                self._config.foreign_visibility_seconds,
            )
        return self._run(request, lease)

    def _reject(self, lease: Lease, exc: MessageError) -> Decision:
        reason = f"Rejected the execution request message: {exc}"
        if exc.urn is None:
            log.error(
                "unusable message dropped",
                message_id=lease.message_id,
                error=str(exc),
                body=lease.body,
            )
            return Decision(Outcome.ACKNOWLEDGE, str(exc))
        log.error("bad execution request", request_urn=exc.urn, error=str(exc))
        start = lease.first_receive_ms or lease.sent_ms or 0
        result = TaskResult(
            status=Status.FAILURE, report=reason, start_time_ms=start, duration_ms=0
        )
        try:
            self._reporter.report(exc.urn, result)
        except GmsError as report_exc:
            # Keep the message: deleting it would lose the only trace of the failure in GMS.
            log.error(
                "could not report the bad message; kept for a retry",
                request_urn=exc.urn,
                error=str(report_exc),
            )
            return Decision(Outcome.RELEASE, f"failure not accepted by GMS: {report_exc}", 30)
        return Decision(Outcome.ACKNOWLEDGE, str(exc))

    def _run(self, request: ExecutionRequest, lease: Lease) -> Decision:
        bound = log.bind(request_urn=request.urn, task=request.task.value)
        try:
            existing = self._reporter.read_result(request.urn)
        except GmsError as exc:
            bound.error("cannot read the existing result", error=str(exc))
            return Decision(Outcome.RELEASE, f"GMS unavailable: {exc}", 30)
        if existing and existing.get("status") in {s.value for s in Status if s.is_terminal}:
            bound.info("already finished, acknowledging", status=existing["status"])
            return Decision(Outcome.ACKNOWLEDGE, f"already {existing['status']}")
        task = Task(request, self._context)
        with self._lock:
            self._tasks[lease.message_id] = task
        try:
            return self._execute(task, bound)
        finally:
            with self._lock:
                self._tasks.pop(lease.message_id, None)

    def _execute(self, task: Task, bound: structlog.typing.FilteringBoundLogger) -> Decision:
        urn = task.request.urn
        try:
            self._reporter.report(urn, task.progress())
        except GmsError as exc:
            bound.warning("RUNNING report failed; running anyway", error=str(exc))
        bound.info("task started")
        with ProgressUpdater(task, self._reporter, self._config.report_interval_seconds):
            result = task.run()
        if task.stopped_because is not None and self._stopping.is_set():
            bound.warning("task stopped by shutdown; released for a retry")
            return Decision(Outcome.RELEASE, "stopped by worker shutdown")
        bound.info("task finished", status=result.status.value, log=str(task.log_path))
        try:
            self._reporter.report(urn, result)
        except ExecutorError as exc:
            bound.error("final report not accepted; message kept for a retry", error=str(exc))
            return Decision(Outcome.RELEASE, f"final report not accepted: {exc}")
        return Decision(Outcome.ACKNOWLEDGE, result.status.value)
