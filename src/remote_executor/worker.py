"""The worker loop: receive while slots are free, decide, run, report, acknowledge.

Every message ends in one explicit outcome (see ``outcome``): acknowledge
(delete), release (visible again, possibly after a delay), or dead-letter
(moved aside with the reason). ``perform`` takes one message from its lease to
that decision; this module receives while slots are free, owns the background
loops (lease keeper, cancel watcher, heartbeats), drains on shutdown, and waits
out the token while GMS refuses it.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import structlog

from remote_executor import __version__
from remote_executor.config import WorkerConfig
from remote_executor.errors import GmsAuthError, GmsError, QueueError
from remote_executor.gms import Reporter
from remote_executor.health import Metrics
from remote_executor.intake import Intake
from remote_executor.loops import Loop, Loops
from remote_executor.outcome import Decision, Outcome, end_message
from remote_executor.perform import Performer, stop_task
from remote_executor.processes import CHILDREN
from remote_executor.queue.base import Lease, Queue
from remote_executor.queue.lease import LeaseKeeper
from remote_executor.results import ResultWriter
from remote_executor.runrecord import new_instance
from remote_executor.slots import Slots
from remote_executor.task import StopKind, Task, TaskContext
from remote_executor.watch import CancelWatcher
from remote_executor.workspace import prune

log = structlog.get_logger("remote_executor.worker")
REAP_SECONDS = 5.0


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
        self.metrics = metrics or Metrics()
        self.instance = new_instance(config.worker_id)
        self.loops = Loops(on_restart=lambda kind, _: self.metrics.loop_restarts.labels(kind).inc())
        self._stopping = threading.Event()
        self._forced = threading.Event()
        self._token_refused = threading.Event()
        self._keeper = LeaseKeeper(
            queue,
            config.lease_seconds,
            self._lease_lost,
            config.max_visibility_seconds,
            stop_margin_seconds=config.lease_stop_margin_seconds,
            metrics=self.metrics,
        )
        self._watcher = CancelWatcher(
            reporter, config.signal_poll_seconds, self._cancel, self._refused, self.metrics
        )
        self._performer = Performer(
            context,
            config,
            intake=Intake(reporter, config, self.instance),
            keeper=self._keeper,
            watcher=self._watcher,
            writer=ResultWriter(
                reporter,
                self.metrics,
                self.loops,
                interval_seconds=config.report_interval_seconds,
                on_refused=self._refused,
                forced=self._forced,
            ),
            metrics=self.metrics,
            stopping=self._stopping,
            on_refused=self._refused,
        )
        self.loops.add(self._keeper.loop)
        self.loops.add(self._watcher.loop)
        # Orphans of tasks that died by themselves are this worker's zombies (subreaper).
        self._reaper = self.loops.add(
            Loop("reaper", CHILDREN.reap_orphans, REAP_SECONDS, on_error=self._loop_failed)
        )
        self._pool = ThreadPoolExecutor(config.max_concurrent_tasks, thread_name_prefix="task")
        self._slots = Slots(config.max_concurrent_tasks)
        self._lock = threading.Lock()
        self._grace_timer: threading.Timer | None = None
        self._heartbeat = time.monotonic()
        self._receive_error: str | None = None
        self.metrics.running.set_function(lambda: len(self._performer.running))
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
    def not_alive_because(self) -> str | None:
        """Why the worker should be restarted: a background loop died; None when alive."""
        return self.loops.dead

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
        tasks' messages are released for a retry by another worker. Not for a signal
        handler: it takes locks and logs (see ``signals``).
        """
        with self._lock:
            first = not self._stopping.is_set()
            self._stopping.set()
        if first:
            grace = self._config.shutdown_grace_seconds
            running = len(self._performer.running)
            log.info("draining: no new work", running=running, grace_seconds=grace)
            self._grace_timer = threading.Timer(
                grace, self._stop_running, (f"the shutdown grace of {grace:g} s ran out",)
            )
            self._grace_timer.daemon = True
            self._grace_timer.start()
        if force:
            self._stop_running("a second stop signal")

    def _stop_running(self, why: str) -> None:
        self._forced.set()
        tasks = self._performer.running
        if tasks:
            log.warning("stopping running tasks", count=len(tasks), because=why)
        for task in tasks:
            stop_task(task, StopKind.SHUTDOWN, f"worker shutting down: {why}")

    def run(self) -> None:
        """Receive and run until ``stop``; then wait for the running tasks."""
        log.info(
            "Starting remote executor worker",
            worker_id=self._config.worker_id,
            instance=self.instance,
            queue=self._queue.url,
            dead_letter_queue=self._queue.dead_letter_url,
            version=__version__,
            max_concurrent_tasks=self._config.max_concurrent_tasks,
        )
        # What a worker that died mid-task left behind goes too, beyond the last N.
        prune(self._context.work_dir, self._config.keep_task_dirs, include_unfinished=True)
        self._keeper.start()
        self._watcher.start()
        self._reaper.start()
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
            self._reaper.stop()
            log.info("worker stopped", worker_id=self._config.worker_id)

    def _loop_failed(self, name: str, _: BaseException) -> None:
        self.metrics.loop_errors.labels(name).inc()

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
                # Not a failure: this worker takes nothing now, another one may at once.
                decision = Decision(Outcome.RELEASE, "worker is not taking work")
                end_message(self._queue, lease, decision, self.metrics)
                self._slots.give()
                continue
            self._pool.submit(self._process, lease)
        for _ in range(free - len(leases)):
            self._slots.give()

    def _process(self, lease: Lease) -> None:
        try:
            decision = self._performer.perform(lease)
        finally:
            self._keeper.drop(lease)
            self._slots.give()
        end_message(self._queue, lease, decision, self.metrics)

    def _cancel(self, task: Task, reason: str) -> None:
        self._performer.cancel(task, reason)

    def _lease_lost(self, lease: Lease, reason: str) -> None:
        self._performer.lease_lost(lease, reason)


__all__ = ["Worker", "WorkerConfig"]
