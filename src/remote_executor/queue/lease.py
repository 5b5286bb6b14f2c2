"""LeaseKeeper: extends every held lease each third of its length, from one thread.

A lease that cannot be kept (the message is gone, or SQS's 12 hour visibility
cap is near) is handed to ``on_lost`` so that the worker stops the task before
another consumer can receive the message and start a second copy.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import structlog

from remote_executor.errors import LeaseLostError, QueueError
from remote_executor.queue.base import MAX_VISIBILITY_SECONDS, Lease, Queue

log = structlog.get_logger("remote_executor.lease")

LostCallback = Callable[[Lease, str], None]


class LeaseKeeper:
    """Keeps messages of running tasks invisible; reports the leases it cannot keep."""

    def __init__(
        self,
        queue: Queue,
        lease_seconds: int,
        on_lost: LostCallback | None = None,
        max_visibility_seconds: float = MAX_VISIBILITY_SECONDS,
    ) -> None:
        self._queue = queue
        self._lease_seconds = lease_seconds
        self._on_lost = on_lost
        self._max_visibility = max_visibility_seconds
        self._held: dict[str, Lease] = {}
        self.lost: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="lease-keeper", daemon=True)

    def start(self) -> LeaseKeeper:
        """Start the extension thread."""
        self._thread.start()
        return self

    def secure(self, lease: Lease) -> None:
        """Extend once now and keep extending until ``drop``; raises QueueError if it fails.

        A task starts only after this succeeded: a lease that cannot be extended would
        let the message reappear while the task still runs.
        """
        self._queue.extend(lease, self._lease_seconds)
        with self._lock:
            self._held[lease.message_id] = lease

    def drop(self, lease: Lease) -> None:
        """Stop extending this lease (it is about to be deleted or released)."""
        with self._lock:
            self._held.pop(lease.message_id, None)

    def stop(self) -> None:
        """Stop the thread."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def extend_all(self) -> None:
        """One round of extensions; called by the thread, callable by tests."""
        with self._lock:
            leases = list(self._held.values())
        for lease in leases:
            left = self._max_visibility - (time.monotonic() - lease.received_at)
            try:
                if left <= self._lease_seconds:
                    # As invisible as SQS allows, which leaves time to stop the task,
                    # report it and delete the message before anyone else receives it.
                    self._queue.extend(lease, max(0, int(left)))
                    self._lose(
                        lease,
                        f"SQS keeps a message invisible for at most "
                        f"{self._max_visibility / 3600:g} h after it is received, and this "
                        "task reached that limit",
                    )
                else:
                    self._queue.extend(lease, self._lease_seconds)
            except LeaseLostError as exc:
                self._lose(lease, str(exc))
            except QueueError as exc:
                log.warning(
                    "lease extension failed, will retry",
                    message_id=lease.message_id,
                    error=str(exc),
                )

    def _lose(self, lease: Lease, reason: str) -> None:
        log.error("lease lost", message_id=lease.message_id, reason=reason)
        with self._lock:
            self._held.pop(lease.message_id, None)
            self.lost[lease.message_id] = reason
        if self._on_lost is not None:
            self._on_lost(lease, reason)

    def _loop(self) -> None:
        while not self._stop.wait(self._lease_seconds / 3):
            self.extend_all()
