"""The Queue role: receive with a lease, extend it, and end every message explicitly."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from remote_executor.errors import QueueError

# SQS keeps a message invisible for at most 12 hours from the receive that leased it.
MAX_VISIBILITY_SECONDS = 12 * 3600

# What ``Queue.extend_many`` could not extend, by message id: LeaseLostError for a lease
# that is gone (retrying cannot help), any other QueueError for one worth another try.
ExtendFailures = dict[str, QueueError]


@dataclass(frozen=True)
class Lease:
    """A received message, held invisible to other consumers until it ends.

    ``received_at`` and ``expires_at`` are ``time.monotonic()`` readings taken no later
    than SQS's own (the start of the receive call), so what is derived from them errs
    early: the 12 hour cap counts from ``received_at``; ``expires_at`` is when the
    receive's visibility timeout ends (``LeaseKeeper.expires_in`` follows extensions).
    """

    message_id: str
    receipt_handle: str
    body: str
    receive_count: int = 1
    first_receive_ms: int | None = None
    sent_ms: int | None = None
    received_at: float = field(default_factory=time.monotonic, compare=False)
    expires_at: float | None = field(default=None, compare=False)


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

    def extend_many(self, leases: Sequence[Lease], lease_seconds: int) -> ExtendFailures:
        """Extend every lease as ``extend`` does, in as few calls as the queue allows.

        Never raises for a lease's failure: the answer holds the leases that were not
        extended, each with its error (LeaseLostError: gone; another QueueError: try
        again later); it is empty when all were. A call that fails as a whole (throttled,
        unreachable) fails every lease it carried with the same transient QueueError.
        """
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


def extend_each(leases: Sequence[Lease], extend: Callable[[Lease], None]) -> ExtendFailures:
    """``extend`` each lease on its own; the ones that failed, with their errors."""
    failures: ExtendFailures = {}
    for lease in leases:
        try:
            extend(lease)
        except QueueError as exc:
            failures[lease.message_id] = exc
    return failures
