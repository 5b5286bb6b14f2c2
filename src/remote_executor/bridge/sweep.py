"""The sweeper: ends the requests of the bridge's executor ids that nothing will end.

- RUNNING with a heartbeat (the run record's, see runrecord) older than
  ``stale_running_seconds``: its worker died or lost GMS and the run cannot be finished by
  anyone, so it becomes ABORTED, with the last heartbeat and the worker that sent it. A
  worker that receives the message again then acknowledges it without running.
- An input with no result after ``pending_timeout_seconds``: no worker ever started it
  (none running for that executor id, or a queue nobody reads), so it becomes CANCELLED
  with that reason rather than pending forever in the UI.
Both are written once, as a terminal result, and GMS refuses the write if the worker
ended the request in between, which is then left as the worker wrote it.
"""

from __future__ import annotations

import time
from collections.abc import Set
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from remote_executor.bridge.forward import DEFAULT_EXECUTOR_ID
from remote_executor.bridge.metrics import BridgeMetrics
from remote_executor.errors import GmsRejectedError
from remote_executor.gms import GmsClient
from remote_executor.gms_search import all_requests
from remote_executor.models import Status, TaskResult
from remote_executor.runrecord import RunRecord

log = structlog.get_logger("remote_executor.bridge.sweep")
# How much of the dead run's last report the ABORTED result keeps.
_LAST_REPORT_CHARS = 20_000


@dataclass(frozen=True)
class SweepLimits:
    stale_running_seconds: float = 1800.0
    pending_timeout_seconds: float = 86400.0

    @property
    def window_ms(self) -> int:
        """How far back a sweep looks: a request older than twice the pending timeout was
        cancelled, or had run to its end, in an earlier sweep."""
        return int(2 * max(self.pending_timeout_seconds, self.stale_running_seconds) * 1000)


class Sweeper:
    """One pass per ``once``; what it ended, by status, is counted in the metrics."""

    def __init__(
        self,
        gms: GmsClient,
        executor_ids: Set[str],
        limits: SweepLimits,
        metrics: BridgeMetrics,
    ) -> None:
        self._gms = gms
        self._executor_ids = frozenset(executor_ids)
        self._limits = limits
        self._metrics = metrics

    def once(self) -> dict[str, int]:
        """Sweep every recent request once; how many were ended, by status."""
        now = int(time.time() * 1000)
        ended = {Status.ABORTED.value: 0, Status.CANCELLED.value: 0}
        for urn in all_requests(self._gms, now - self._limits.window_ms):
            verdict = self.verdict(urn, now)
            if verdict is None:
                continue
            try:
                self._gms.report(urn, verdict)
            except GmsRejectedError as exc:  # it ended meanwhile: GMS keeps the first end
                log.info("sweep.refused", urn=urn, error=str(exc))
                continue
            ended[verdict.status.value] += 1
            self._metrics.swept.labels(verdict.status.value).inc()
            log.warning("sweep.ended", urn=urn, status=verdict.status.value, reason=verdict.report)
        return ended

    def verdict(self, urn: str, now_ms: int) -> TaskResult | None:
        """The terminal result urn should get now, None to leave it."""
        state = self._gms.read_state(urn)
        request = state.input or {}
        executor_id = request.get("executorId") or DEFAULT_EXECUTOR_ID
        if executor_id not in self._executor_ids:
            return None
        if state.result is None:
            return self._pending(request, now_ms, executor_id)
        if state.result.get("status") == Status.RUNNING.value:
            return self._running(state.result, now_ms)
        return None

    def _pending(self, request: dict[str, Any], now_ms: int, executor_id: str) -> TaskResult | None:
        requested = request.get("requestedAt")
        limit = self._limits.pending_timeout_seconds
        if not isinstance(requested, int) or now_ms - requested < limit * 1000:
            return None
        report = (
            f"Cancelled by the bridge: no worker started this request in {_span(limit)} "
            f"(EXECUTOR_PENDING_TIMEOUT_SECONDS={limit:g}) since it was requested at "
            f"{_when(requested)}. Check that a worker with executor id {executor_id} runs and "
            "reads the queue the bridge sends to."
        )
        return TaskResult(status=Status.CANCELLED, report=report, start_time_ms=now_ms)

    def _running(self, result: dict[str, Any], now_ms: int) -> TaskResult | None:
        record = RunRecord.parse(result)
        started = result.get("startTimeMs")
        beat = record.at_ms if record is not None else started
        limit = self._limits.stale_running_seconds
        if not isinstance(beat, int) or now_ms - beat < limit * 1000:
            return None
        who = (
            f"worker {record.worker_id} (instance {record.instance}, run {record.attempt})"
            if record is not None
            else "its executor"
        )
        report = (
            f"Aborted by the bridge: no heartbeat from {who} since {_when(beat)}, "
            f"{_span((now_ms - beat) / 1000)} ago, longer than EXECUTOR_STALE_RUNNING_SECONDS="
            f"{limit:g}; the worker stopped or lost GMS without ending the run.\n\n"
            f"Last report (its end):\n{str(result.get('report', ''))[-_LAST_REPORT_CHARS:]}"
        )
        start = started if isinstance(started, int) else beat
        return TaskResult(
            status=Status.ABORTED, report=report, start_time_ms=start, duration_ms=now_ms - start
        )


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _span(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"
