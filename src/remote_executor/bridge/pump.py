"""The bridge's main loop: poll GMS's change log, queue what is ours, commit the offset.

At least once: the offset is committed only after every request of a batch was queued, so a
crash or a failed send replays the batch from the last commit. A replayed request is
harmless, as the worker runs a request once (a terminal result in GMS means acknowledge).
"""

from __future__ import annotations

import time
from typing import Protocol

import structlog

from remote_executor.bridge.events import Batch
from remote_executor.bridge.forward import Forwarded, Forwarder
from remote_executor.bridge.metrics import BridgeMetrics
from remote_executor.errors import ExecutorError, GmsError

log = structlog.get_logger("remote_executor.bridge")
MAX_BACKOFF_SECONDS = 30.0


class ChangeSource(Protocol):
    def poll(self, offset: str | None) -> Batch: ...


class OffsetStore(Protocol):
    def load(self) -> str | None: ...

    def commit(self, offset: str) -> None: ...


class Pump:
    """One round per ``once``; ``next_wait`` backs off while rounds fail."""

    def __init__(
        self,
        source: ChangeSource,
        offsets: OffsetStore,
        forwarder: Forwarder,
        metrics: BridgeMetrics,
    ) -> None:
        self._source = source
        self._offsets = offsets
        self._forwarder = forwarder
        self._metrics = metrics
        self._offset: str | None = None
        self._loaded = False
        self._failures = 0
        self.last_success: float | None = None  # time.monotonic() of the last good round
        self.problem: str | None = "the bridge has not read GMS's change log yet"

    def once(self) -> None:
        """Poll, forward, commit; an ExecutorError is recorded, counted and raised."""
        try:
            self._round()
        except ExecutorError as exc:
            self._failures += 1
            part = "gms" if isinstance(exc, GmsError) else "queue"
            self._metrics.errors.labels(part).inc()
            self.problem = f"{part}: {exc}"
            log.error("bridge.round_failed", part=part, error=str(exc), failures=self._failures)
            raise
        self._failures = 0
        self.problem = None
        self.last_success = time.monotonic()

    def next_wait(self) -> float:
        """0 after a good round (the poll itself waits), then 1, 2, 4 ... 30 s."""
        if not self._failures:
            return 0.0
        return float(min(MAX_BACKOFF_SECONDS, 2 ** (self._failures - 1)))

    def _round(self) -> None:
        if not self._loaded:
            self._offset = self._offsets.load()
            self._loaded = True
            log.info("bridge.offset_loaded", offset=self._offset)
        batch = self._source.poll(self._offset)
        self._metrics.changes.inc(len(batch.changes))
        self._metrics.undecodable.inc(batch.undecodable)
        for change in batch.changes:
            outcome = self._forwarder.forward(change)
            if isinstance(outcome, Forwarded):
                self._metrics.forwarded.labels(
                    outcome.executor_id, str(outcome.truncated).lower()
                ).inc()
                log.info(
                    "bridge.forwarded",
                    urn=outcome.urn,
                    executor_id=outcome.executor_id,
                    message_id=outcome.message_id,
                    truncated=outcome.truncated,
                )
            elif outcome.executor_id is not None:
                self._metrics.skipped_other_executor.inc()
                log.debug("bridge.skipped", urn=outcome.urn, executor_id=outcome.executor_id)
        if batch.next_offset is not None and batch.next_offset != self._offset:
            self._offsets.commit(batch.next_offset)
            self._offset = batch.next_offset
            self._metrics.last_commit.set_to_current_time()
