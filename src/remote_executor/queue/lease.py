"""LeaseKeeper: extends every held lease each third of its length, from one thread."""

from __future__ import annotations

import threading

import structlog

from remote_executor.errors import LeaseLostError, QueueError
from remote_executor.queue.base import Lease, Queue

log = structlog.get_logger("remote_executor.lease")


class LeaseKeeper:
    """Keeps messages of running tasks invisible; remembers which leases were lost."""

    def __init__(self, queue: Queue, lease_seconds: int) -> None:
        self._queue = queue
        self._lease_seconds = lease_seconds
        self._held: dict[str, Lease] = {}
        self.lost: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="lease-keeper", daemon=True)

    def start(self) -> LeaseKeeper:
        """Start the extension thread."""
        self._thread.start()
        return self

    def hold(self, lease: Lease) -> None:
        """Extend this lease until ``drop``."""
        with self._lock:
            self._held[lease.message_id] = lease

    def drop(self, lease: Lease) -> None:
        """Stop extending this lease (it is about to be deleted or released)."""
        with self._lock:
            self._held.pop(lease.message_id, None)

    def stop(self) -> None:
        """Stop the thread."""
        self._stop.set()
        self._thread.join(timeout=5)

    def extend_all(self) -> None:
        """One round of extensions; called by the thread, callable by tests."""
        with self._lock:
            leases = list(self._held.values())
        for lease in leases:
            try:
                self._queue.extend(lease, self._lease_seconds)
            except LeaseLostError as exc:
                log.error("lease lost", message_id=lease.message_id, error=str(exc))
                with self._lock:
                    self._held.pop(lease.message_id, None)
                    self.lost[lease.message_id] = str(exc)
            except QueueError as exc:
                log.warning("lease extension failed, will retry", error=str(exc))

    def _loop(self) -> None:
        while not self._stop.wait(self._lease_seconds / 3):
            self.extend_all()
