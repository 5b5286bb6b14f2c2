"""ResultWriter: every GMS write of one task, and what happens when GMS says no.

A task's result aspect is written by this class only: the claim (RUNNING with a new
run record, before the child starts), the heartbeat (RUNNING with the log so far,
every ``EXECUTOR_REPORT_INTERVAL_SECONDS`` whether or not the log grew), the note of
a release, and the final status. Policy for the final write:

- GMS down or refusing the token: keep trying, lease kept, until a forced stop (the
  work is done, and a release would run it again).
- GMS refusing the result (4xx): send a short one without log and reports; if that
  is refused too, acknowledge the message and log it with the request urn: the same
  result would be refused again after any re-run.
- After a lost lease: write only while the request's run record is still this run, so
  that no terminal status lands on a result another worker now owns.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import structlog

from remote_executor.errors import (
    GmsAuthError,
    GmsError,
    GmsRejectedError,
    GmsUnavailableError,
)
from remote_executor.gms import Reporter
from remote_executor.health import Metrics
from remote_executor.loops import Loop, Loops
from remote_executor.models import TaskResult
from remote_executor.outcome import Decision, Outcome
from remote_executor.runrecord import RunRecord
from remote_executor.task import StopKind, Task

log = structlog.get_logger("remote_executor.results")


class ResultWriter:
    """Writes one worker's task results to GMS."""

    def __init__(
        self,
        reporter: Reporter,
        metrics: Metrics,
        loops: Loops,
        *,
        interval_seconds: float,
        on_refused: Callable[[GmsAuthError], None],
        forced: threading.Event,
    ) -> None:
        self._reporter = reporter
        self._metrics = metrics
        self._loops = loops
        self._interval = interval_seconds
        self._on_refused = on_refused
        self._forced = forced

    def claim(self, task: Task) -> None:
        """RUNNING with the task's run record; GmsError if GMS did not take it.

        Nothing starts unclaimed: without the record another worker could not tell that
        this run is alive, and the run would not be counted.
        """
        self._reporter.report(task.request.urn, task.progress())

    @contextmanager
    def heartbeat(self, task: Task) -> Iterator[None]:
        """Beat while the block runs; the last beat has landed when the block ends."""
        loop = Loop(
            f"heartbeat {task.identity}",
            lambda: self._beat(task),
            self._interval,
            on_error=lambda name, _: self._metrics.loop_errors.labels("heartbeat").inc(),
        )
        self._loops.add(loop.start())
        try:
            yield
        finally:
            # Joining waits out a beat in flight, so no RUNNING can land after the end.
            loop.stop(join_seconds=None)
            self._loops.remove(loop)

    def _beat(self, task: Task) -> None:
        stopped = task.stopped
        if stopped is not None and stopped[0] is StopKind.LEASE_LOST:
            return  # the request may be another worker's now: no claim over its record
        if task.record is not None:
            task.record = task.record.beat()
        try:
            self._reporter.report(task.request.urn, task.progress())
        except GmsAuthError as exc:
            self._metrics.progress_failures.inc()
            self._on_refused(exc)
        except GmsError as exc:
            self._metrics.progress_failures.inc()
            log.warning("heartbeat not accepted", request_urn=task.request.urn, error=str(exc))

    def released(self, task: Task, note: str) -> None:
        """RUNNING, given back: another worker may start the request at once."""
        if task.record is not None:
            task.record = task.record.release()
        try:
            self._reporter.report(task.request.urn, task.progress([note]))
        except GmsError as exc:
            log.warning(
                "could not note the release in GMS", request_urn=task.request.urn, error=str(exc)
            )

    def still_ours(self, task: Task) -> bool:
        """The request's run record is this task's run (read from GMS)."""
        try:
            state = self._reporter.read_state(task.request.urn)
        except GmsError as exc:
            log.warning(
                "cannot tell who owns the request", request_urn=task.request.urn, error=str(exc)
            )
            return False
        record = RunRecord.parse(state.result)
        mine = task.record
        return (
            record is not None
            and mine is not None
            and record.instance == mine.instance
            and (record.attempt == mine.attempt)
        )

    def final(self, task: Task, result: TaskResult) -> Decision:
        """Write the terminal result; the decision that ends the message."""
        urn = task.request.urn
        shortened = False
        delay = 1.0
        while True:
            try:
                self._reporter.report(urn, result)
            except (GmsUnavailableError, GmsAuthError) as exc:
                self._metrics.gms_errors.inc()
                if isinstance(exc, GmsAuthError):
                    self._on_refused(exc)
                if self._forced.is_set():
                    return Decision(Outcome.RELEASE, f"final report not accepted: {exc}")
                log.error(
                    "final report not accepted yet; retrying", request_urn=urn, error=str(exc)
                )
                self._forced.wait(delay)
                delay = min(delay * 2, 60.0)
                continue
            except GmsRejectedError as exc:
                self._metrics.gms_errors.inc()
                if shortened:
                    log.error(
                        "GMS refused the final result twice; acknowledged without a result "
                        "in GMS (see the task directory)",
                        request_urn=urn,
                        status=result.status.value,
                        dir=str(task.dir),
                        error=str(exc),
                    )
                    return Decision(Outcome.ACKNOWLEDGE, f"final result refused twice: {exc}")
                log.error(
                    "GMS refused the final report; sending a short one",
                    request_urn=urn,
                    error=str(exc),
                )
                result = task.shortened(result, f"GMS refused the full report: {exc}")
                shortened = True
                continue
            return Decision(Outcome.ACKNOWLEDGE, result.status.value)
