"""LeaseKeeper: secured messages stay invisible; lost leases are reported and dropped."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import pytest

from remote_executor.errors import LeaseLostError, QueueError
from remote_executor.queue import Lease, MemoryQueue
from remote_executor.queue.lease import LeaseKeeper


def _expired_lease(queue: MemoryQueue, body: str = "a") -> Lease:
    queue.send(body)
    [lease] = queue.receive(1, 0, 0)  # a lease that has already run out
    assert queue.visible_count() >= 1
    return lease


def test_secure_extends_at_once_and_extend_all_keeps_it() -> None:
    queue = MemoryQueue()
    lease = _expired_lease(queue)
    keeper = LeaseKeeper(queue, lease_seconds=30)

    keeper.secure(lease)
    assert queue.visible_count() == 0
    keeper.extend_all()

    assert queue.receive(1, 0, 30) == []
    assert keeper.lost == {}


def test_secure_fails_when_the_message_is_held_elsewhere() -> None:
    queue = MemoryQueue()
    stale = _expired_lease(queue)
    queue.receive(1, 0, 30)  # redelivered to another consumer: our receipt is stale
    keeper = LeaseKeeper(queue, lease_seconds=30)

    with pytest.raises(LeaseLostError, match="receipt is stale"):
        keeper.secure(stale)
    keeper.extend_all()
    assert keeper.lost == {}  # never held, so never reported


def test_dropped_lease_is_not_extended() -> None:
    queue = MemoryQueue()
    queue.send("a")
    [lease] = queue.receive(1, 0, 1)
    keeper = LeaseKeeper(queue, lease_seconds=1)
    keeper.secure(lease)
    keeper.drop(lease)
    queue.release(lease, 0)

    keeper.extend_all()

    assert queue.visible_count() == 1


def test_lost_lease_is_reported_and_no_longer_extended() -> None:
    queue = MemoryQueue()
    lost: list[tuple[str, str]] = []
    keeper = LeaseKeeper(queue, 30, on_lost=lambda lease, why: lost.append((lease.body, why)))
    gone = _expired_lease(queue, "a")
    keeper.secure(gone)
    kept = _expired_lease(queue, "b")
    keeper.secure(kept)
    queue.delete(gone)

    keeper.extend_all()
    keeper.extend_all()

    reason = f"lease of message {gone.message_id} lost: receipt is stale"
    assert keeper.lost == {gone.message_id: reason}
    assert lost == [("a", reason)]
    assert queue.visible_count() == 0  # "b" still extended


def test_visibility_cap_reports_the_lease_lost_and_extends_to_the_cap() -> None:
    queue = MemoryQueue()
    lost: list[str] = []
    keeper = LeaseKeeper(
        queue, 30, on_lost=lambda _, why: lost.append(why), max_visibility_seconds=3600
    )
    lease = _expired_lease(queue)
    keeper.secure(lease)
    # Received 59 min 50 s ago: one more full lease would pass SQS's cap.
    old = dataclasses.replace(lease, received_at=time.monotonic() - 3590)
    keeper.drop(lease)
    keeper.secure(old)

    keeper.extend_all()

    assert lost == [
        "SQS keeps a message invisible for at most 1 h after it is received, "
        "and this task reached that limit"
    ]
    assert queue.visible_count() == 0  # still invisible until the cap, for the final report
    keeper.extend_all()
    assert len(lost) == 1


def test_transient_queue_error_is_retried_next_round() -> None:
    class FlakyQueue(MemoryQueue):
        failures = 0

        def extend(self, lease: Lease, lease_seconds: int) -> None:
            if self.failures:
                self.failures -= 1
                raise QueueError("visibility change failed: ServiceUnavailable")
            super().extend(lease, lease_seconds)

    queue = FlakyQueue()
    queue.send("a")
    [lease] = queue.receive(1, 0, 1)
    keeper = LeaseKeeper(queue, lease_seconds=1)
    keeper.secure(lease)
    queue.release(lease, 0)
    queue.failures = 1

    keeper.extend_all()
    assert queue.visible_count() == 1
    assert keeper.lost == {}
    keeper.extend_all()

    assert queue.visible_count() == 0


def test_thread_extends_every_third_of_the_lease(wait_for: Callable[..., bool]) -> None:
    queue = MemoryQueue()
    queue.send("a")
    [lease] = queue.receive(1, 0, 3)
    keeper = LeaseKeeper(queue, lease_seconds=3).start()
    try:
        keeper.secure(lease)
        queue.delete(lease)  # the next extension must notice the lease is gone

        assert wait_for(lambda: lease.message_id in keeper.lost, timeout_seconds=20)
    finally:
        keeper.stop()
