"""Intake: what a received message is, and whether its request may run here.

Before anything starts, a message is decoded and one read of GMS gives the
request's result, signal and input (``parse``). The input that runs is GMS's: a
message for a request GMS does not know is dead-lettered. A bad input is
reported and dead-lettered, and one for another executor is left for its owner.
Then that state decides the rest (``preflight``): a request that already
finished or was cancelled ends without running; one that another worker runs
(its run record has a fresh heartbeat) is left to it; one that ran
``EXECUTOR_MAX_ATTEMPTS`` times without a result fails. Otherwise the next run
record is returned, and the worker claims the request with it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import structlog

from remote_executor.config import WorkerConfig
from remote_executor.errors import (
    GmsAuthError,
    GmsError,
    GmsRejectedError,
    GmsUnavailableError,
    MessageError,
)
from remote_executor.gms import Reporter, RequestState
from remote_executor.messages import Envelope, parse_envelope, parse_input
from remote_executor.models import TERMINAL_STATUSES, ExecutionRequest, Status, TaskResult
from remote_executor.outcome import Decision, Outcome, describe_body
from remote_executor.queue.base import Lease
from remote_executor.runrecord import RunRecord, now_ms
from remote_executor.watch import describe_kill

log = structlog.get_logger("remote_executor.worker")


@dataclass(frozen=True)
class Admitted:
    """A request that may be for this worker, with what GMS held for it when it was read."""

    request: ExecutionRequest
    state: RequestState


class Intake:
    """Turns a lease into a request to run, or into the decision that ends it.

    GmsAuthError passes through: a refused token is the worker's business.
    """

    def __init__(self, reporter: Reporter, config: WorkerConfig, instance: str) -> None:
        self._reporter = reporter
        self._config = config
        self._instance = instance

    def retry_later(self, reason: str, lease: Lease) -> Decision:
        """Release after a delay that grows with the message's receives: trouble that may
        pass (GMS or SQS down, a copy running elsewhere). Never with no delay."""
        config = self._config
        delay = min(
            config.retry_delay_seconds * max(1, lease.receive_count), config.max_retry_delay_seconds
        )
        return Decision(Outcome.RELEASE, reason, max(1, delay))

    def parse(self, lease: Lease) -> Admitted | Decision:
        """The request to run and its state in GMS, or how the message ends without running.

        One read of GMS gives the result, the signal and the input: with
        ``EXECUTOR_REQUIRE_GMS_INPUT`` (the default) the input GMS holds is what runs, and a
        message for a request GMS does not know is dead-lettered without a word to GMS.
        """
        try:
            envelope = parse_envelope(lease.body)
        except MessageError as exc:
            return self._reject(lease, exc)
        state = self._read_state(lease, envelope)
        if isinstance(state, Decision):
            return state
        value = self._input_to_run(lease, envelope, state)
        if isinstance(value, Decision):
            return value
        try:
            request = parse_input(envelope.urn, value)
        except MessageError as exc:
            return self._reject(lease, exc)
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
        return Admitted(request, state)

    def _read_state(self, lease: Lease, envelope: Envelope) -> RequestState | Decision:
        try:
            return self._reporter.read_state(envelope.urn)
        except GmsAuthError:
            raise
        except GmsRejectedError as exc:  # a 4xx for this urn: asking again cannot help
            log.error("GMS refused to read the request", request_urn=envelope.urn, error=str(exc))
            return Decision(Outcome.DEAD_LETTER, f"GMS refused to read the request: {exc}")
        except GmsError as exc:
            log.error(
                "cannot read the request's state in GMS", request_urn=envelope.urn, error=str(exc)
            )
            return self.retry_later(f"GMS unavailable: {exc}", lease)

    def _input_to_run(
        self, lease: Lease, envelope: Envelope, state: RequestState
    ) -> dict[str, Any] | Decision:
        if self._config.require_gms_input:
            if state.input is None:
                reason = (
                    f"GMS holds no input for {envelope.urn}: the request was never written to "
                    "GMS, so it does not run (every producer writes the request to GMS before "
                    "queueing it; EXECUTOR_REQUIRE_GMS_INPUT=false runs the message's copy)"
                )
                log.error("message for a request GMS does not know", request_urn=envelope.urn)
                return Decision(Outcome.DEAD_LETTER, reason)
            if envelope.input is not None and envelope.input != state.input:
                log.warning(
                    "the message's input differs from the one in GMS; running GMS's",
                    request_urn=envelope.urn,
                )
            return state.input
        if envelope.input is not None:
            return envelope.input
        if state.input is None:
            return self._reject(
                lease,
                MessageError("message was truncated and GMS has no input for it", envelope.urn),
            )
        return state.input

    def preflight(self, admitted: Admitted, lease: Lease) -> RunRecord | Decision:
        """The run record to claim the request with, or why it must not run now."""
        state = admitted.state
        try:
            return self._decide(admitted.request, lease, state.result, state.signal)
        except GmsAuthError:
            raise
        except GmsError as exc:
            log.error("cannot write to GMS", request_urn=admitted.request.urn, error=str(exc))
            return self.retry_later(f"GMS unavailable: {exc}", lease)

    def _decide(
        self,
        request: ExecutionRequest,
        lease: Lease,
        existing: dict[str, Any] | None,
        signal_value: dict[str, Any] | None,
    ) -> RunRecord | Decision:
        if existing and existing.get("status") in TERMINAL_STATUSES:
            log.info("already finished, acknowledging", request_urn=request.urn)
            return Decision(Outcome.ACKNOWLEDGE, f"already {existing['status']}")
        kill = describe_kill(signal_value) if signal_value else None
        if kill is not None:
            return self._finish_early(lease, request.urn, Status.CANCELLED, f"Cancelled: {kill}.")
        record = RunRecord.parse(existing)
        config = self._config
        if record is not None and record.alive(config.stale_heartbeat_seconds):
            age = max(0.0, (now_ms() - record.at_ms) / 1000)
            where = (
                "this worker"
                if record.instance == self._instance
                else (f"worker {record.worker_id} (instance {record.instance})")
            )
            log.warning(
                "request runs elsewhere; copy left",
                request_urn=request.urn,
                instance=record.instance,
            )
            return self.retry_later(
                f"run {record.attempt} of this request runs on {where}, heartbeat {age:.0f} s ago",
                lease,
            )
        runs = record.attempt if record is not None else 0
        if runs >= config.max_attempts:
            return self._finish_early(
                lease,
                request.urn,
                Status.FAILURE,
                f"Failed: gave up after {runs} runs (EXECUTOR_MAX_ATTEMPTS="
                f"{config.max_attempts}); each started and ended without a result, for "
                "instance because its worker was killed. See the workers' logs for this "
                "request.",
            )
        if lease.receive_count > config.max_receives:
            return self._finish_early(
                lease,
                request.urn,
                Status.FAILURE,
                f"Failed: the message was received {lease.receive_count} times and never "
                f"ran to a result (the limit is {config.max_receives}); see the workers' "
                "logs for this request.",
            )
        return RunRecord(runs + 1, config.max_attempts, config.worker_id, self._instance, now_ms())

    def _reject(self, lease: Lease, exc: MessageError) -> Decision:
        reason = f"Rejected the execution request message: {exc}"
        if exc.urn is None:
            log.error(
                "undecodable message",
                message_id=lease.message_id,
                error=str(exc),
                **describe_body(lease.body),
            )
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
            return self.retry_later(f"failure not accepted by GMS: {report_exc}", lease)
        except GmsRejectedError as report_exc:
            return Decision(
                Outcome.DEAD_LETTER, f"{exc}; GMS refused its FAILURE result: {report_exc}"
            )
        return Decision(Outcome.DEAD_LETTER, str(exc))

    def fail(self, lease: Lease, urn: str, report: str) -> Decision:
        """End a request FAILURE without running it (an error outside the task itself)."""
        return self._finish_early(lease, urn, Status.FAILURE, report)

    def _finish_early(self, lease: Lease, urn: str, status: Status, report: str) -> Decision:
        log.warning("ended without running", request_urn=urn, status=status.value)
        try:
            self._reporter.report(urn, _result(lease, status, report))
        except GmsUnavailableError as exc:
            return self.retry_later(f"{status.value} not accepted by GMS: {exc}", lease)
        except GmsRejectedError as exc:
            log.error(
                "GMS refused the result; acknowledged",
                request_urn=urn,
                status=status.value,
                error=str(exc),
            )
        return Decision(Outcome.ACKNOWLEDGE, f"{status.value} without running")


def _result(lease: Lease, status: Status, report: str) -> TaskResult:
    start = lease.first_receive_ms or lease.sent_ms or int(time.time() * 1000)
    return TaskResult(status=status, report=report, start_time_ms=start, duration_ms=0)


__all__ = ["Admitted", "Intake"]
