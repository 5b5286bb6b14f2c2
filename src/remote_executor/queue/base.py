"""The Queue role: receive with a lease, extend it, and end every message explicitly."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

# SQS keeps a message invisible for at most 12 hours from the receive that leased it.
MAX_VISIBILITY_SECONDS = 12 * 3600


@dataclass(frozen=True)
class Lease:
    """A received message, held invisible to other consumers until it ends."""

    message_id: str
    receipt_handle: str
    body: str
    receive_count: int = 1
    first_receive_ms: int | None = None
    sent_ms: int | None = None
    received_at: float = field(default_factory=time.monotonic, compare=False)


class Queue(Protocol):
    """A command queue with visibility leases, such as SQS."""

    @property
    def url(self) -> str:
        """Where the queue lives, for logs."""
        ...

    def receive(self, max_messages: int, wait_seconds: int, lease_seconds: int) -> list[Lease]:
        """Up to ``max_messages`` messages, waiting at most ``wait_seconds`` for one."""
        ...

    def extend(self, lease: Lease, lease_seconds: int) -> None:
        """Keep the message invisible for ``lease_seconds`` from now; LeaseLostError if gone."""
        ...

    def release(self, lease: Lease, delay_seconds: int = 0) -> None:
        """Make the message visible again after ``delay_seconds``, for another try."""
        ...

    def delete(self, lease: Lease) -> None:
        """Acknowledge: the message is done and must never come back."""
        ...

    @property
    def dead_letter_url(self) -> str | None:
        """Where undecodable messages go, or None when the queue has no dead-letter queue."""
        ...

    def dead_letter(self, lease: Lease, reason: str) -> None:
        """Move the message to the dead-letter queue with ``reason``, then delete it here."""
        ...

    def send(self, body: str) -> str:
        """Enqueue a message; its id."""
        ...

    def attributes(self) -> dict[str, str]:
        """The queue's attributes; proves it exists and we may read it."""
        ...
