"""LeaseKeeper: held messages stay invisible; lost leases are remembered and dropped."""

from __future__ import annotations

from collections.abc import Callable

from remote_executor.errors import QueueError
from remote_executor.queue import Lease, MemoryQueue
from remote_executor.queue.lease import LeaseKeeper


def test_extend_all_keeps_a_message_past_its_original_lease() -> None:
    queue = MemoryQueue()
    queue.send("a")
    [lease] = queue.receive(1, 0, 0)  # a lease that has already run out
    assert queue.visible_count() == 1
    keeper = LeaseKeeper(queue, lease_seconds=30)
    keeper.hold(lease)

    keeper.extend_all()

    assert queue.visible_count() == 0
    assert queue.receive(1, 0, 30) == []
    assert keeper.lost == {}


def test_dropped_lease_is_not_extended() -> None:
    queue = MemoryQueue()
    queue.send("a")
    [lease] = queue.receive(1, 0, 0)
    keeper = LeaseKeeper(queue, lease_seconds=30)
    keeper.hold(lease)
    keeper.drop(lease)

    keeper.extend_all()

    assert queue.visible_count() == 1


def test_lost_lease_is_recorded_and_no_longer_extended() -> None:
    queue = MemoryQueue()
    queue.send("a")
    queue.send("b")
    stale, kept = queue.receive(2, 0, 0)
    queue.receive(1, 0, 30)  # "a" redelivered elsewhere: our receipt is stale
    keeper = LeaseKeeper(queue, lease_seconds=30)
    keeper.hold(stale)
    keeper.hold(kept)

    keeper.extend_all()
    keeper.extend_all()

    assert keeper.lost == {
        stale.message_id: f"lease of message {stale.message_id} lost: receipt is stale"
    }
    assert queue.visible_count() == 0  # "b" extended, "a" held by the other consumer


def test_transient_queue_error_is_retried_next_round() -> None:
    class FlakyQueue(MemoryQueue):
        def __init__(self) -> None:
            super().__init__()
            self.failures = 1

        def extend(self, lease: Lease, lease_seconds: int) -> None:
            if self.failures:
                self.failures -= 1
                raise QueueError("visibility change failed: ServiceUnavailable")
            super().extend(lease, lease_seconds)

    queue = FlakyQueue()
    queue.send("a")
    [lease] = queue.receive(1, 0, 0)
    keeper = LeaseKeeper(queue, lease_seconds=30)
    keeper.hold(lease)

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
        keeper.hold(lease)
        queue.delete(lease)  # the next extension must notice the lease is gone

        assert wait_for(lambda: lease.message_id in keeper.lost, timeout_seconds=20)
    finally:
        keeper.stop()
