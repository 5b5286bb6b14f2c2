"""LeaseKeeper: keeps the messages of running tasks invisible, from one background loop.

Each held lease knows when its visibility really ends: the start of the last
extension call that succeeded plus the seconds it asked for (SQS counts from the
call, so this errs early). Every tick (about a second) the keeper extends, in one
``extend_many`` call, each lease with less than two thirds of ``lease_seconds``
left, so a healthy lease is extended every third of its length. A failed
extension is tried again on later ticks, no more often than every
``retry_seconds``, while the lease runs down.

A lease that cannot be kept is handed to ``on_lost`` once, and never extended
again: when the queue says it is gone, when its extensions kept failing until
less than ``stop_margin_seconds`` of visibility remain (the time the worker needs
to stop the task and report it), or when SQS's 12 hour cap is near. The worker
then stops the task before another consumer can receive the message and start a
second copy.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from remote_executor.errors import LeaseLostError, QueueError
from remote_executor.loops import Loop
from remote_executor.queue.base import MAX_VISIBILITY_SECONDS, ExtendFailures, Lease, Queue

if TYPE_CHECKING:
    from remote_executor.health import Metrics

log = structlog.get_logger("remote_executor.lease")

LostCallback = Callable[[Lease, str], None]

# The default kill grace (10 s) and 15 s to report the stopped task.
DEFAULT_STOP_MARGIN_SECONDS = 25.0
DEFAULT_RETRY_SECONDS = 5.0
DEFAULT_TICK_SECONDS = 1.0
# A lease is extended once less than this share of it is left: every third of its length.
EXTEND_BELOW = 2 / 3


@dataclass(eq=False)
class _Held:
    """One lease the keeper extends, and how its extensions went."""

    lease: Lease
    expires_at: float  # the keeper's clock
    failing_since: float | None = None  # the first failed try since the last success
    last_error: str = ""
    next_try_at: float = 0.0
    lost: bool = False


class LeaseKeeper:
    """Keeps messages of running tasks invisible; reports the leases it cannot keep.

    ``clock`` reads ``time.monotonic`` unless a test gives another, on the same scale
    as ``Lease.received_at``. A short lease (tests, demos) ticks and retries at least
    every sixth of its length, so it still gets several tries before it runs out.
    """

    def __init__(
        self,
        queue: Queue,
        lease_seconds: int,
        on_lost: LostCallback | None = None,
        max_visibility_seconds: float = MAX_VISIBILITY_SECONDS,
        *,
        stop_margin_seconds: float = DEFAULT_STOP_MARGIN_SECONDS,
        retry_seconds: float = DEFAULT_RETRY_SECONDS,
        tick_seconds: float = DEFAULT_TICK_SECONDS,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._queue = queue
        self._lease_seconds = lease_seconds
        self._on_lost = on_lost
        self._max_visibility = max_visibility_seconds
        self._stop_margin = stop_margin_seconds
        self._retry = min(retry_seconds, lease_seconds / 6)
        self._metrics = metrics
        self._clock = clock
        self._held: dict[str, _Held] = {}
        self.lost: dict[str, str] = {}
        self._lock = threading.Lock()
        tick = max(0.05, min(tick_seconds, lease_seconds / 6))
        self.loop = Loop("lease-keeper", self.tick, tick, self._loop_failed)

    def start(self) -> LeaseKeeper:
        """Start the extension loop (``self.loop``, for the worker's ``Loops``)."""
        self.loop.start()
        return self

    def stop(self) -> None:
        """Stop the loop, after the round in flight."""
        self.loop.stop()

    def secure(self, lease: Lease) -> None:
        """Extend once now and keep extending until ``drop``; raises QueueError if it fails.

        A task starts only after this succeeded: a lease that cannot be extended would
        let the message reappear while the task still runs.
        """
        started = self._clock()
        self._queue.extend(lease, self._lease_seconds)
        with self._lock:
            self._held[lease.message_id] = _Held(lease, started + self._lease_seconds)

    def drop(self, lease: Lease) -> None:
        """Stop extending this lease (it is about to be deleted or released)."""
        with self._lock:
            self._held.pop(lease.message_id, None)

    def expires_in(self, message_id: str) -> float | None:
        """Seconds until the held message becomes visible again (negative: it has been);
        None for a message the keeper does not hold. A lost lease keeps its last answer."""
        with self._lock:
            held = self._held.get(message_id)
        return None if held is None else held.expires_at - self._clock()

    def tick(self) -> None:
        """One round: extend what is due, then hand over what cannot be kept."""
        now = self._clock()
        with self._lock:
            held = [record for record in self._held.values() if not record.lost]
        due: list[_Held] = []
        capped: list[_Held] = []
        for record in held:
            if self._cap_left(record, now) <= max(self._lease_seconds, self._stop_margin):
                capped.append(record)
            elif self._is_due(record, now):
                due.append(record)
        lost = self._extend(due) if due else []
        lost += [(record, self._extend_to_cap(record)) for record in capped]
        lost += self._running_out()
        for record, reason in lost:
            self._lose(record, reason)

    def _cap_left(self, record: _Held, now: float) -> float:
        return self._max_visibility - (now - record.lease.received_at)

    def _is_due(self, record: _Held, now: float) -> bool:
        left = record.expires_at - now
        return left < self._lease_seconds * EXTEND_BELOW and now >= record.next_try_at

    def _extend_many(self, records: list[_Held], seconds: int) -> tuple[float, ExtendFailures]:
        started = self._clock()
        try:
            failures = self._queue.extend_many([record.lease for record in records], seconds)
        except QueueError as exc:  # the role says it returns them; a queue may still raise
            failures = {record.lease.message_id: exc for record in records}
        if self._metrics is not None and any(
            not isinstance(error, LeaseLostError) for error in failures.values()
        ):
            self._metrics.aws_errors.inc()
        return started, failures

    def _extend(self, due: list[_Held]) -> list[tuple[_Held, str]]:
        started, failures = self._extend_many(due, self._lease_seconds)
        lost: list[tuple[_Held, str]] = []
        with self._lock:
            for record in due:
                error = failures.get(record.lease.message_id)
                if self._held.get(record.lease.message_id) is not record:
                    continue  # dropped meanwhile: its task has ended
                if error is None:
                    record.expires_at = started + self._lease_seconds
                    record.failing_since, record.last_error, record.next_try_at = None, "", 0.0
                elif isinstance(error, LeaseLostError):
                    lost.append((record, str(error)))
                else:
                    self._failed(record, error, started)
        return lost

    def _failed(self, record: _Held, error: QueueError, started: float) -> None:
        if record.failing_since is None:
            record.failing_since = started
        record.last_error = str(error)
        record.next_try_at = started + self._retry
        if self._metrics is not None:
            self._metrics.lease_extension_failures.inc()
        log.warning(
            "lease extension failed, will retry",
            message_id=record.lease.message_id,
            error=str(error),
            failing_seconds=round(started - record.failing_since, 1),
            visible_in_seconds=round(record.expires_at - started, 1),
        )

    def _extend_to_cap(self, record: _Held) -> str:
        """As invisible as SQS allows, which leaves time to stop the task, report it and
        delete the message before anyone else receives it; the reason it is lost."""
        reason = (
            f"SQS keeps a message invisible for at most {self._max_visibility / 3600:g} h "
            "after it is received, and this task reached that limit"
        )
        now = self._clock()
        seconds = max(0, int(self._cap_left(record, now)))
        if record.expires_at - now >= seconds:
            return reason  # already invisible as long as the cap allows
        started, failures = self._extend_many([record], seconds)
        error = failures.get(record.lease.message_id)
        if isinstance(error, LeaseLostError):
            return str(error)
        with self._lock:
            if error is None:
                record.expires_at = started + seconds
            else:
                self._failed(record, error, started)
        return reason

    def _running_out(self) -> list[tuple[_Held, str]]:
        """Failing leases with less visibility left than the worker needs to stop a task."""
        now = self._clock()
        lost: list[tuple[_Held, str]] = []
        with self._lock:
            for record in self._held.values():
                left = record.expires_at - now
                if record.lost or record.failing_since is None or left >= self._stop_margin:
                    continue
                ends = f"ends in {left:.0f} s" if left > 0 else f"ended {-left:.0f} s ago"
                lost.append(
                    (
                        record,
                        f"the lease could not be extended for {now - record.failing_since:.0f} s "
                        f"(last error: {record.last_error}), and its visibility {ends}",
                    )
                )
        return lost

    def _lose(self, record: _Held, reason: str) -> None:
        lease = record.lease
        with self._lock:
            if self._held.get(lease.message_id) is not record or record.lost:
                return
            record.lost = True
            self.lost[lease.message_id] = reason
        if self._metrics is not None:
            self._metrics.leases_lost.inc()
        log.error("lease lost", message_id=lease.message_id, reason=reason)
        if self._on_lost is not None:
            self._on_lost(lease, reason)

    def _loop_failed(self, name: str, _: BaseException) -> None:
        if self._metrics is not None:
            self._metrics.loop_errors.labels(loop=name).inc()
