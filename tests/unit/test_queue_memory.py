"""MemoryQueue: the in-memory twin keeps SQS's lease semantics."""

from __future__ import annotations

import threading

import pytest

from remote_executor.errors import LeaseLostError, QueueError
from remote_executor.queue import Lease, MemoryQueue


def test_send_then_receive_hands_out_a_lease() -> None:
    queue = MemoryQueue()
    message_id = queue.send("hello")

    [lease] = queue.receive(10, 0, 30)

    assert lease.message_id == message_id
    assert lease.body == "hello"
    assert lease.receive_count == 1
    assert lease.first_receive_ms is not None
    assert lease.sent_ms is not None


def test_received_message_is_invisible_until_its_lease_ends() -> None:
    queue = MemoryQueue()
    queue.send("hello")
    queue.receive(10, 0, 30)

    assert queue.receive(10, 0, 30) == []
    assert queue.visible_count() == 0
    assert len(queue) == 1


def test_expired_lease_redelivers_with_a_higher_count() -> None:
    queue = MemoryQueue()
    queue.send("hello")
    [first] = queue.receive(10, 0, 0)

    [second] = queue.receive(10, 0, 30)

    assert second.message_id == first.message_id
    assert second.receive_count == 2
    assert second.first_receive_ms == first.first_receive_ms
    assert second.receipt_handle != first.receipt_handle


def test_receive_takes_at_most_max_messages() -> None:
    queue = MemoryQueue()
    for n in range(5):
        queue.send(f"m{n}")

    assert [lease.body for lease in queue.receive(3, 0, 30)] == ["m0", "m1", "m2"]
    assert [lease.body for lease in queue.receive(3, 0, 30)] == ["m3", "m4"]


def test_release_without_delay_makes_it_visible_at_once() -> None:
    queue = MemoryQueue()
    queue.send("hello")
    [lease] = queue.receive(10, 0, 30)

    queue.release(lease)

    assert queue.visible_count() == 1
    assert queue.receive(10, 0, 30)[0].receive_count == 2


def test_release_with_delay_keeps_it_hidden_for_the_delay() -> None:
    queue = MemoryQueue()
    queue.send("hello")
    [lease] = queue.receive(10, 0, 30)

    queue.release(lease, delay_seconds=1)

    assert queue.visible_count() == 0
    assert queue.receive(10, 3, 30)[0].receive_count == 2  # waits out the delay


def test_extend_keeps_a_message_past_its_lease() -> None:
    queue = MemoryQueue()
    queue.send("hello")
    [lease] = queue.receive(10, 0, 0)  # visible again at once

    queue.extend(lease, 30)

    assert queue.visible_count() == 0


def test_stale_receipt_loses_the_lease() -> None:
    queue = MemoryQueue()
    queue.send("hello")
    [stale] = queue.receive(10, 0, 0)
    queue.receive(10, 0, 30)  # someone else holds it now

    for call in (
        lambda: queue.extend(stale, 30),
        lambda: queue.release(stale),
        lambda: queue.delete(stale),
    ):
        with pytest.raises(LeaseLostError) as caught:
            call()
        assert str(caught.value) == f"lease of message {stale.message_id} lost: receipt is stale"
    assert len(queue) == 1


def test_delete_acknowledges_for_good() -> None:
    queue = MemoryQueue()
    message_id = queue.send("hello")
    [lease] = queue.receive(10, 0, 0)

    queue.delete(lease)

    assert len(queue) == 0
    assert queue.deleted == [message_id]
    assert queue.receive(10, 0, 30) == []
    with pytest.raises(LeaseLostError):
        queue.extend(lease, 30)


def test_receive_waits_for_a_message_sent_meanwhile() -> None:
    queue = MemoryQueue()
    threading.Timer(0.1, queue.send, args=("late",)).start()

    leases = queue.receive(10, 10, 30)

    assert [lease.body for lease in leases] == ["late"]


def test_attributes_count_messages() -> None:
    queue = MemoryQueue("memory://q")
    queue.send("a")
    queue.send("b")

    assert queue.attributes() == {"ApproximateNumberOfMessages": "2"}
    assert queue.url == "memory://q"


def test_extend_many_extends_what_it_can_and_names_the_leases_it_lost() -> None:
    queue = MemoryQueue()
    for body in ("kept", "deleted", "stale"):
        queue.send(body)
    kept, deleted, stale = queue.receive(10, 0, 30)
    queue.delete(deleted)
    queue.release(stale)
    queue.receive(10, 0, 30)  # "stale" is someone else's now
    queue.release(kept)  # visible again, until the extension

    failures = queue.extend_many([kept, deleted, stale], 60)

    assert {key: str(error) for key, error in failures.items()} == {
        lease.message_id: f"lease of message {lease.message_id} lost: receipt is stale"
        for lease in (deleted, stale)
    }
    assert all(isinstance(error, LeaseLostError) for error in failures.values())
    assert queue.visible_count() == 0  # "kept" extended
    assert queue.extend_batches == [[kept.message_id, deleted.message_id, stale.message_id]]
    assert queue.extend_many([], 60) == {}
    assert len(queue.extend_batches) == 1  # no leases, no call


def test_extend_many_goes_through_extend_so_a_refusing_queue_fails_batches_too() -> None:
    class RefusingQueue(MemoryQueue):
        def extend(self, lease: Lease, lease_seconds: int) -> None:
            raise QueueError("visibility change failed: AccessDenied")

    queue = RefusingQueue()
    queue.send("hello")
    [lease] = queue.receive(10, 0, 30)

    failures = queue.extend_many([lease], 60)

    assert type(failures[lease.message_id]) is QueueError
    assert str(failures[lease.message_id]) == "visibility change failed: AccessDenied"
