"""Intake: what a received message is, and whether its request may run here.

Before anything starts, a message is decoded, a bad one is reported (when it
names a request) and dead-lettered, one for another executor is left for its
owner, and a request that already finished, was cancelled before it started or
was tried too often ends without running.
"""

from __future__ import annotations

import time

import structlog

from remote_executor.errors import (
    GmsAuthError,
    GmsError,
    GmsRejectedError,
    GmsUnavailableError,
    MessageError,
)
from remote_executor.gms import Reporter
from remote_executor.messages import parse_envelope, parse_input
from remote_executor.models import TERMINAL_STATUSES, ExecutionRequest, Status, TaskResult
from remote_executor.outcome import Decision, Outcome
from remote_executor.queue.base import Lease
from remote_executor.watch import describe_kill

log = structlog.get_logger("remote_executor.worker")


class Intake:
    """Turns a lease into a request to run, or into the decision that ends it.

    GmsAuthError passes through: a refused token is the worker's business.
    """

    def __init__(
        self,
        reporter: Reporter,
        worker_id: str,
        *,
        foreign_visibility_seconds: int,
        max_attempts: int,
        retry_delay_seconds: int,
    ) -> None:
        self._reporter = reporter
        self._worker_id = worker_id
        self._foreign_visibility = foreign_visibility_seconds
        self._max_attempts = max_attempts
        self._retry_delay = retry_delay_seconds

    def retry_later(self, reason: str) -> Decision:
        """Release after the retry delay: GMS or SQS trouble that may pass."""
        return Decision(Outcome.RELEASE, reason, self._retry_delay)

    def admit(self, lease: Lease) -> ExecutionRequest | Decision:
        """The request to run, or how the message ends without running."""
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
        except GmsAuthError:
            raise
        except GmsError as exc:
            return self.retry_later(f"could not read the truncated input: {exc}")
        if request.executor_id != self._worker_id:
            log.warning(
                "message for another executor left for its owner",
                request_urn=request.urn,
                executor_id=request.executor_id,
            )
            return Decision(
                Outcome.RELEASE,
                f"executorId is {request.executor_id!r}, not ours",
                self._foreign_visibility,
            )
        try:
            return self._preflight(request, lease) or request
        except GmsAuthError:
            raise
        except GmsError as exc:
            log.error("cannot read the request's state in GMS", request_urn=request.urn)
            return self.retry_later(f"GMS unavailable: {exc}")

    def _reject(self, lease: Lease, exc: MessageError) -> Decision:
        reason = f"Rejected the execution request message: {exc}"
        if exc.urn is None:
            log.error("undecodable message", message_id=lease.message_id, error=str(exc))
            return Decision(Outcome.DEAD_LETTER, str(exc))
        log.error("bad execution request", request_urn=exc.urn, error=str(exc))
        try:
            self._reporter.report(exc.urn, _result(lease, Status.FAILURE, reason))
        except GmsUnavailableError as report_exc:
            # Keep the message: deleting it would lose the only trace of the failure in GMS.
            log.error(
                "could not report the bad message; kept for a retry",
                request_urn=exc.urn,
                error=str(report_exc),
            )
            return self.retry_later(f"failure not accepted by GMS: {report_exc}")
        except GmsRejectedError as report_exc:
            return Decision(
                Outcome.DEAD_LETTER, f"{exc}; GMS refused its FAILURE result: {report_exc}"
            )
        return Decision(Outcome.DEAD_LETTER, str(exc))

    def _preflight(self, request: ExecutionRequest, lease: Lease) -> Decision | None:
        """Why this request must not run, or None: already finished, killed, tried too often."""
        existing = self._reporter.read_result(request.urn)
        if existing and existing.get("status") in TERMINAL_STATUSES:
            log.info("already finished, acknowledging", request_urn=request.urn)
            return Decision(Outcome.ACKNOWLEDGE, f"already {existing['status']}")
        signal_value = self._reporter.read_signal(request.urn)
        kill = describe_kill(signal_value) if signal_value else None
        if kill is not None:
            return self._finish_early(lease, request, Status.CANCELLED, f"Cancelled: {kill}.")
        attempts = lease.receive_count - 1
        if attempts >= self._max_attempts:
            return self._finish_early(
                lease,
                request,
                Status.FAILURE,
                f"Failed: gave up after {attempts} attempts (EXECUTOR_MAX_ATTEMPTS="
                f"{self._max_attempts}); each ended without a result, for instance because "
                "its worker was killed or GMS did not accept the result. See the workers' "
                "logs for this request.",
            )
        return None

    def _finish_early(
        self, lease: Lease, request: ExecutionRequest, status: Status, report: str
    ) -> Decision:
        log.warning("ended without running", request_urn=request.urn, status=status.value)
        try:
            self._reporter.report(request.urn, _result(lease, status, report))
        except GmsUnavailableError as exc:
            return self.retry_later(f"{status.value} not accepted by GMS: {exc}")
        return Decision(Outcome.ACKNOWLEDGE, f"{status.value} without running")


def _result(lease: Lease, status: Status, report: str) -> TaskResult:
    start = lease.first_receive_ms or lease.sent_ms or int(time.time() * 1000)
    return TaskResult(status=status, report=report, start_time_ms=start, duration_ms=0)


__all__ = ["Intake"]
