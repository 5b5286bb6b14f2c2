"""MemoryQueue: an in-memory twin of SqsQueue with real visibility timeouts, for unit tests."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from remote_executor.errors import LeaseLostError, QueueError
from remote_executor.queue.base import ExtendFailures, Lease, extend_each


@dataclass
class _Stored:
    message_id: str
    body: str
    sent_ms: int
    visible_at: float = 0.0
    receive_count: int = 0
    first_receive_ms: int | None = None
    receipt: str | None = None


class MemoryQueue:
    """Keeps messages in a list; receipts go stale when a message is received again."""

    def __init__(self, url: str = "memory://queue", dead_letters: bool = False) -> None:
        self._url = url
        self._dead_letter_url = f"{url}-dead-letters" if dead_letters else None
        # (body, reason) of every dead-lettered message, when dead letters are on.
        self.dead_letters: list[tuple[str, str]] = []
        self._messages: dict[str, _Stored] = {}
        self._ids = itertools.count(1)
        self._cond = threading.Condition()
        self.deleted: list[str] = []
        # The message ids of each extend_many call, so tests see what was batched.
        self.extend_batches: list[list[str]] = []

    @property
    def url(self) -> str:
        return self._url

    def send(self, body: str) -> str:
        with self._cond:
            message_id = f"m-{next(self._ids)}"
            self._messages[message_id] = _Stored(message_id, body, int(time.time() * 1000))
            self._cond.notify_all()
            return message_id

    def receive(self, max_messages: int, wait_seconds: int, lease_seconds: int) -> list[Lease]:
        deadline = time.monotonic() + wait_seconds
        with self._cond:
            while True:
                leases = self._take(max_messages, lease_seconds)
                remaining = deadline - time.monotonic()
                if leases or remaining <= 0:
                    return leases
                self._cond.wait(min(remaining, 0.05))

    def _take(self, max_messages: int, lease_seconds: int) -> list[Lease]:
        now = time.monotonic()
        leases: list[Lease] = []
        for stored in self._messages.values():
            if len(leases) >= max_messages or stored.visible_at > now:
                continue
            stored.receive_count += 1
            stored.first_receive_ms = stored.first_receive_ms or int(time.time() * 1000)
            stored.receipt = f"{stored.message_id}#{stored.receive_count}"
            stored.visible_at = now + lease_seconds
            leases.append(
                Lease(
                    stored.message_id,
                    stored.receipt,
                    stored.body,
                    stored.receive_count,
                    stored.first_receive_ms,
                    stored.sent_ms,
                    received_at=now,
                    expires_at=stored.visible_at,
                )
            )
        return leases

    def _held(self, lease: Lease) -> _Stored:
        stored = self._messages.get(lease.message_id)
        if stored is None or stored.receipt != lease.receipt_handle:
            raise LeaseLostError(f"lease of message {lease.message_id} lost: receipt is stale")
        return stored

    def extend(self, lease: Lease, lease_seconds: int) -> None:
        with self._cond:
            self._held(lease).visible_at = time.monotonic() + lease_seconds

    def extend_many(self, leases: Sequence[Lease], lease_seconds: int) -> ExtendFailures:
        """One call for any number of leases; each goes through ``extend``, as in SQS's batch.

        Through ``extend``, so that a test's queue that overrides it fails batches too.
        """
        if not leases:
            return {}
        with self._cond:
            self.extend_batches.append([lease.message_id for lease in leases])
        return extend_each(leases, lambda lease: self.extend(lease, lease_seconds))

    def release(self, lease: Lease, delay_seconds: int = 0) -> None:
        with self._cond:
            self._held(lease).visible_at = time.monotonic() + delay_seconds
            self._cond.notify_all()

    def delete(self, lease: Lease) -> None:
        with self._cond:
            self._held(lease)
            del self._messages[lease.message_id]
            self.deleted.append(lease.message_id)

    @property
    def dead_letter_url(self) -> str | None:
        return self._dead_letter_url

    def dead_letter(self, lease: Lease, reason: str) -> None:
        if self._dead_letter_url is None:
            raise QueueError(f"{self._url} has no dead-letter queue")
        with self._cond:
            self._held(lease)
            self.dead_letters.append((lease.body, reason))
            del self._messages[lease.message_id]

    def attributes(self) -> dict[str, str]:
        with self._cond:
            return {"ApproximateNumberOfMessages": str(len(self._messages))}

    def visible_count(self) -> int:
        """Messages a receive would hand out now."""
        with self._cond:
            now = time.monotonic()
            return sum(1 for m in self._messages.values() if m.visible_at <= now)

    def __len__(self) -> int:
        with self._cond:
            return len(self._messages)
