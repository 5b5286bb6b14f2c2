"""LeaseKeeper: secured messages stay invisible; lost leases are reported and dropped."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence

import pytest

from remote_executor.errors import LeaseLostError, QueueError
from remote_executor.health import Metrics
from remote_executor.queue import Lease, MemoryQueue
from remote_executor.queue.base import ExtendFailures
from remote_executor.queue.lease import LeaseKeeper

LEASE_SECONDS = 300  # extended once less than 200 s are left
MARGIN_SECONDS = 25.0
RETRY_SECONDS = 5.0


class Clock:
    """A monotonic clock that moves only when told; starts near time.monotonic().

    At a whole second, so that whole-second steps add up without rounding.
    """

    def __init__(self) -> None:
        self.now = float(round(time.monotonic()))

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FlakyQueue(MemoryQueue):
    """A MemoryQueue whose extensions fail (transiently) while ``down``."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.attempts = 0

    def extend(self, lease: Lease, lease_seconds: int) -> None:
        self.attempts += 1
        if self.down:
            raise QueueError("visibility change failed: ServiceUnavailable: try later")
        super().extend(lease, lease_seconds)


def _keeper(queue: MemoryQueue, clock: Clock, **overrides: object) -> LeaseKeeper:
    options: dict[str, object] = {
        "stop_margin_seconds": MARGIN_SECONDS,
        "retry_seconds": RETRY_SECONDS,
        "clock": clock,
        **overrides,
    }
    return LeaseKeeper(queue, LEASE_SECONDS, **options)  # type: ignore[arg-type]


def _lease(queue: MemoryQueue, body: str = "a") -> Lease:
    queue.send(body)
    [lease] = queue.receive(1, 0, 0)  # a lease that has already run out
    assert queue.visible_count() >= 1
    return lease


def _secured(keeper: LeaseKeeper, queue: MemoryQueue, body: str = "a") -> Lease:
    lease = _lease(queue, body)
    keeper.secure(lease)
    return lease


def _tick_for(keeper: LeaseKeeper, clock: Clock, seconds: int) -> None:
    """One tick a second, as the keeper's loop makes them."""
    for _ in range(seconds):
        clock.advance(1)
        keeper.tick()


def _count(metrics: Metrics, name: str) -> float:
    return metrics.registry.get_sample_value(f"executor_{name}_total") or 0.0


def test_secure_extends_at_once_and_records_when_the_visibility_ends() -> None:
    queue, clock = MemoryQueue(), Clock()
    lease = _lease(queue)
    keeper = _keeper(queue, clock)

    keeper.secure(lease)

    assert queue.visible_count() == 0
    assert keeper.expires_in(lease.message_id) == LEASE_SECONDS
    clock.advance(60)
    keeper.tick()
    assert keeper.expires_in(lease.message_id) == LEASE_SECONDS - 60
    assert queue.extend_batches == []  # two thirds are left: nothing due yet
    assert keeper.expires_in("never-held") is None


def test_secure_fails_when_the_message_is_held_elsewhere() -> None:
    queue, clock = MemoryQueue(), Clock()
    stale = _lease(queue)
    queue.receive(1, 0, 30)  # redelivered to another consumer: our receipt is stale
    keeper = _keeper(queue, clock)

    with pytest.raises(LeaseLostError, match="receipt is stale"):
        keeper.secure(stale)
    _tick_for(keeper, clock, 120)
    assert keeper.lost == {}  # never held, so never reported
    assert keeper.expires_in(stale.message_id) is None


def test_due_leases_are_extended_in_one_batch_each_third_of_the_lease() -> None:
    queue, clock = MemoryQueue(), Clock()
    keeper = _keeper(queue, clock)
    first = [_secured(keeper, queue, f"m{n}") for n in range(12)]
    clock.advance(50)
    later = _secured(keeper, queue, "later")

    _tick_for(keeper, clock, 51)  # the first twelve are due at 100 s, "later" at 150 s

    assert queue.extend_batches == [[lease.message_id for lease in first]]
    assert keeper.expires_in(first[0].message_id) == LEASE_SECONDS
    _tick_for(keeper, clock, 50)
    assert queue.extend_batches[1:] == [[later.message_id]]
    assert keeper.lost == {}


def test_dropped_lease_is_not_extended() -> None:
    queue, clock = MemoryQueue(), Clock()
    lease = _lease(queue)
    keeper = _keeper(queue, clock)
    keeper.secure(lease)
    keeper.drop(lease)
    queue.release(lease, 0)

    _tick_for(keeper, clock, 150)

    assert queue.visible_count() == 1
    assert queue.extend_batches == []
    assert keeper.expires_in(lease.message_id) is None


def test_lost_lease_is_reported_once_and_no_longer_extended() -> None:
    queue, clock, metrics = MemoryQueue(), Clock(), Metrics()
    lost: list[tuple[str, str]] = []
    keeper = _keeper(
        queue, clock, on_lost=lambda lease, why: lost.append((lease.body, why)), metrics=metrics
    )
    gone, kept = _secured(keeper, queue, "a"), _secured(keeper, queue, "b")
    queue.delete(gone)

    _tick_for(keeper, clock, 101)
    _tick_for(keeper, clock, 101)

    reason = f"lease of message {gone.message_id} lost: receipt is stale"
    assert keeper.lost == {gone.message_id: reason}
    assert lost == [("a", reason)]
    assert queue.extend_batches == [[gone.message_id, kept.message_id], [kept.message_id]]
    assert queue.visible_count() == 0  # "b" still extended
    assert _count(metrics, "leases_lost") == 1
    assert _count(metrics, "lease_extension_failures") == 0  # gone is not a failure to retry
    assert keeper.expires_in(gone.message_id) == LEASE_SECONDS - 202


def test_failing_extension_is_retried_every_retry_seconds_until_the_margin() -> None:
    queue, clock, metrics = FlakyQueue(), Clock(), Metrics()
    lost: list[str] = []
    keeper = _keeper(queue, clock, on_lost=lambda _, why: lost.append(why), metrics=metrics)
    lease = _lease(queue)
    keeper.secure(lease)
    queue.down, queue.attempts = True, 0

    _tick_for(keeper, clock, 275)  # due at 101 s; 25 s are left at 275 s: not yet lost

    assert lost == []
    assert queue.attempts == len(range(101, 276, 5))  # 101, 106, ... 271: every 5 s
    assert keeper.expires_in(lease.message_id) == MARGIN_SECONDS
    _tick_for(keeper, clock, 1)
    assert lost == [
        "the lease could not be extended for 175 s (last error: visibility change failed: "
        "ServiceUnavailable: try later), and its visibility ends in 24 s"
    ]
    assert keeper.lost == {lease.message_id: lost[0]}
    attempts = len(range(101, 277, 5))
    assert _count(metrics, "lease_extension_failures") == attempts
    assert _count(metrics, "aws_errors") == attempts
    assert _count(metrics, "leases_lost") == 1
    _tick_for(keeper, clock, 60)
    assert len(lost) == 1
    assert queue.attempts == attempts  # a lost lease is no longer extended


def test_a_recovered_extension_resets_the_count_down() -> None:
    queue, clock = FlakyQueue(), Clock()
    lost: list[str] = []
    keeper = _keeper(queue, clock, on_lost=lambda _, why: lost.append(why))
    lease = _lease(queue)
    keeper.secure(lease)
    queue.down = True
    _tick_for(keeper, clock, 150)  # failing since 101 s

    queue.down = False
    _tick_for(keeper, clock, 1)  # the retry at 151 s succeeds
    assert keeper.expires_in(lease.message_id) == LEASE_SECONDS
    queue.down = True
    _tick_for(keeper, clock, 275)  # due again at 252 s; 25 s are left at 426 s

    assert lost == []
    _tick_for(keeper, clock, 1)
    assert lost == [
        "the lease could not be extended for 175 s (last error: visibility change failed: "
        "ServiceUnavailable: try later), and its visibility ends in 24 s"
    ]


def test_a_queue_that_raises_for_the_whole_batch_fails_every_lease_transiently() -> None:
    class RaisingQueue(MemoryQueue):
        def extend_many(self, leases: Sequence[Lease], lease_seconds: int) -> ExtendFailures:
            raise QueueError("visibility change failed: Could not connect to the endpoint URL")

    queue, clock, metrics = RaisingQueue(), Clock(), Metrics()
    keeper = _keeper(queue, clock, metrics=metrics)
    for body in "ab":
        _secured(keeper, queue, body)

    _tick_for(keeper, clock, 101)

    assert keeper.lost == {}
    assert _count(metrics, "lease_extension_failures") == 2
    assert _count(metrics, "aws_errors") == 1  # one call failed


def test_visibility_cap_reports_the_lease_lost_and_keeps_it_invisible() -> None:
    queue, clock = MemoryQueue(), Clock()
    lost: list[str] = []
    keeper = _keeper(
        queue, clock, on_lost=lambda _, why: lost.append(why), max_visibility_seconds=3600
    )
    lease = _lease(queue)
    # Received 59 min 50 s ago: one more full lease would pass SQS's cap.
    keeper.secure(dataclasses.replace(lease, received_at=clock() - 3590))

    keeper.tick()

    assert lost == [
        "SQS keeps a message invisible for at most 1 h after it is received, "
        "and this task reached that limit"
    ]
    assert queue.visible_count() == 0  # still invisible until the cap, for the final report
    _tick_for(keeper, clock, 5)
    assert len(lost) == 1


def test_near_the_cap_the_lease_is_extended_to_the_cap_then_lost() -> None:
    queue, clock = MemoryQueue(), Clock()
    lost: list[str] = []
    keeper = _keeper(
        queue, clock, on_lost=lambda _, why: lost.append(why), max_visibility_seconds=3600
    )
    lease = dataclasses.replace(_lease(queue), received_at=clock() - 3000)
    keeper.secure(lease)
    _tick_for(keeper, clock, 101)  # a full extension: the cap is 499 s away
    assert lost == []

    _tick_for(keeper, clock, 199)  # at 300 s the cap is 300 s away, no more than a lease

    assert keeper.expires_in(lease.message_id) == 300  # extended to the cap, not past it
    assert lost == [
        "SQS keeps a message invisible for at most 1 h after it is received, "
        "and this task reached that limit"
    ]


def test_a_bad_round_is_survived_and_counted() -> None:
    queue, clock, metrics = MemoryQueue(), Clock(), Metrics()

    def on_lost(lease: Lease, reason: str) -> None:
        raise RuntimeError("the worker's callback has a bug")

    keeper = _keeper(queue, clock, on_lost=on_lost, metrics=metrics)
    gone = _lease(queue)
    keeper.secure(gone)
    queue.delete(gone)
    clock.advance(101)

    keeper.loop.run_once()

    assert keeper.loop.errors == 1
    assert metrics.registry.get_sample_value("executor_loop_errors_total", {"loop": "lease-keeper"})
    assert gone.message_id in keeper.lost


def test_the_loop_extends_and_notices_a_lost_lease(wait_for: Callable[..., bool]) -> None:
    queue = MemoryQueue()
    queue.send("a")
    [lease] = queue.receive(1, 0, 3)
    keeper = LeaseKeeper(queue, lease_seconds=3).start()
    try:
        keeper.secure(lease)
        assert wait_for(lambda: queue.extend_batches, timeout_seconds=20)
        queue.delete(lease)  # the next extension must notice the lease is gone

        assert wait_for(lambda: lease.message_id in keeper.lost, timeout_seconds=20)
        assert keeper.loop.alive
    finally:
        keeper.stop()
