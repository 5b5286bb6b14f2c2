"""SqsQueue against moto's SQS on loopback."""

from __future__ import annotations

import dataclasses
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from remote_executor.aws import LONG_POLL_MAX_SECONDS, client_config
from remote_executor.errors import LeaseLostError, QueueError
from remote_executor.queue import Lease
from remote_executor.queue.lease import LeaseKeeper
from remote_executor.queue.sqs import SqsQueue, region_from_url
from remote_executor.sandbox.aws import AwsSandbox


@pytest.fixture
def queue(aws_box: AwsSandbox) -> SqsQueue:
    """A fresh queue for each test, so no test sees another's messages."""
    url = aws_box.create_queue(f"q-{uuid.uuid4().hex[:8]}")
    return SqsQueue(url, aws_box.client("sqs"))


def test_send_receive_delete(queue: SqsQueue) -> None:
    message_id = queue.send('{"hello": "world"}')

    [lease] = queue.receive(10, 1, 30)

    assert lease.message_id == message_id
    assert lease.body == '{"hello": "world"}'
    assert lease.receive_count == 1
    assert lease.first_receive_ms is not None
    assert lease.sent_ms is not None
    queue.delete(lease)
    assert queue.attributes()["ApproximateNumberOfMessages"] == "0"
    assert queue.attributes()["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_leased_message_is_invisible(queue: SqsQueue) -> None:
    queue.send("a")
    queue.receive(10, 1, 30)

    assert queue.receive(10, 0, 30) == []
    attributes = queue.attributes()
    assert attributes["ApproximateNumberOfMessages"] == "0"
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "1"


def test_release_redelivers_with_a_higher_receive_count(queue: SqsQueue) -> None:
    queue.send("a")
    [first] = queue.receive(10, 1, 30)

    queue.release(first)
    [second] = queue.receive(10, 1, 30)

    assert second.message_id == first.message_id
    assert second.receive_count == 2
    assert second.first_receive_ms == first.first_receive_ms


def test_release_with_delay_keeps_it_hidden(queue: SqsQueue) -> None:
    queue.send("a")
    [lease] = queue.receive(10, 1, 30)

    queue.release(lease, delay_seconds=60)

    assert queue.receive(10, 0, 30) == []


def test_extend_keeps_it_hidden(queue: SqsQueue) -> None:
    queue.send("a")
    [lease] = queue.receive(10, 1, 30)

    queue.extend(lease, 120)

    assert queue.receive(10, 0, 30) == []
    assert queue.attributes()["ApproximateNumberOfMessagesNotVisible"] == "1"


def test_extend_of_a_deleted_message_loses_the_lease(queue: SqsQueue) -> None:
    queue.send("a")
    [lease] = queue.receive(10, 1, 30)
    queue.delete(lease)

    with pytest.raises(LeaseLostError) as caught:
        queue.extend(lease, 30)

    assert str(caught.value) == (
        f"lease of message {lease.message_id} lost: "
        "ReceiptHandleIsInvalid: The input receipt handle is invalid."
    )


def test_receive_caps_max_messages_at_ten(queue: SqsQueue) -> None:
    for n in range(12):
        queue.send(f"m{n}")

    leases = queue.receive(50, 1, 30)

    assert 1 <= len(leases) <= 10


def test_attributes_of_a_missing_queue(aws_box: AwsSandbox) -> None:
    url = f"{aws_box.endpoint_url}/123456789012/no-such-queue"
    queue = SqsQueue(url, aws_box.client("sqs"))

    with pytest.raises(QueueError) as caught:
        queue.attributes()

    assert str(caught.value) == (
        f"queue {url}: AWS.SimpleQueueService.NonExistentQueue: The specified queue does not exist."
    )


def test_send_to_a_missing_queue(aws_box: AwsSandbox) -> None:
    url = f"{aws_box.endpoint_url}/123456789012/no-such-queue"

    with pytest.raises(QueueError, match=r"^send to .*/no-such-queue failed: "):
        SqsQueue(url, aws_box.client("sqs")).send("x")


def test_unreachable_endpoint_is_a_queue_error(unreachable_client: Callable[[str], Any]) -> None:
    client = unreachable_client("sqs")
    queue = SqsQueue("http://127.0.0.1:9/123456789012/q", client)

    with pytest.raises(
        QueueError, match=r"^receive from http://127.0.0.1:9/123456789012/q failed: "
    ):
        queue.receive(1, 0, 30)


@pytest.mark.parametrize(
    ("url", "region"),
    [
        ("https://sqs.eu-west-1.amazonaws.com/123456789012/q", "eu-west-1"),
        ("https://sqs.us-gov-west-1.amazonaws.com/123456789012/q", "us-gov-west-1"),
        ("https://sqs.cn-north-1.amazonaws.com.cn/123456789012/q", "cn-north-1"),
        ("https://ap-southeast-2.queue.amazonaws.com/123456789012/q", "ap-southeast-2"),
        ("http://127.0.0.1:4566/123456789012/q", None),
        ("https://localhost.localstack.cloud:4566/000000000000/q", None),
    ],
)
def test_region_from_url(url: str, region: str | None) -> None:
    assert region_from_url(url) == region


def test_create_takes_the_region_from_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")

    queue = SqsQueue.create("https://sqs.eu-west-1.amazonaws.com/123456789012/q")

    assert queue._client.meta.region_name == "eu-west-1"


def test_the_region_of_an_aws_url_wins_over_the_worker_region(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A worker in us-east-2 (AWS_REGION on Fargate) reading DataHub's queue in eu-west-1.
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-2")

    queue = SqsQueue.create("https://sqs.eu-west-1.amazonaws.com/123456789012/q", "us-east-2")

    assert queue._client.meta.region_name == "eu-west-1"


def test_a_url_without_a_region_uses_the_given_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")

    queue = SqsQueue.create("http://127.0.0.1:4566/123456789012/q", "us-east-2")

    assert queue._client.meta.region_name == "us-east-2"


def _dead_letters(aws_box: AwsSandbox, url: str) -> list[Any]:
    response = aws_box.client("sqs").receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=1
    )
    return list(response.get("Messages", []))


def test_dead_letter_queue_found_from_the_redrive_policy(aws_box: AwsSandbox) -> None:
    suffix = uuid.uuid4().hex[:8]
    dead_url = aws_box.create_queue(f"dead-{suffix}")
    url = aws_box.create_queue(f"main-{suffix}", dead_letter_url=dead_url)
    queue = SqsQueue(url, aws_box.client("sqs"))
    assert queue.dead_letter_url is None

    assert queue.find_dead_letter_queue() == dead_url
    queue.send("{not json")
    [lease] = queue.receive(1, 1, 30)
    queue.dead_letter(lease, "message body is not JSON")

    [moved] = _dead_letters(aws_box, dead_url)
    assert moved["Body"] == "{not json"
    attributes = {k: v["StringValue"] for k, v in moved["MessageAttributes"].items()}
    assert attributes == {
        "reason": "message body is not JSON",
        "source_message_id": lease.message_id,
        "receive_count": "1",
    }
    assert queue.attributes()["ApproximateNumberOfMessages"] == "0"
    assert queue.attributes()["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_explicit_dead_letter_url_wins_and_no_policy_means_none(
    aws_box: AwsSandbox, queue: SqsQueue
) -> None:
    assert queue.find_dead_letter_queue() is None
    explicit = SqsQueue(queue.url, aws_box.client("sqs"), dead_letter_url="https://example/dlq")
    assert explicit.find_dead_letter_queue() == "https://example/dlq"


def test_dead_letter_without_a_dead_letter_queue_is_an_error(queue: SqsQueue) -> None:
    queue.send("x")
    [lease] = queue.receive(1, 1, 30)

    with pytest.raises(QueueError, match=r"has no dead-letter queue$"):
        queue.dead_letter(lease, "why")


def _leases(queue: SqsQueue, count: int) -> list[Lease]:
    for n in range(count):
        queue.send(f"m{n}")
    leases: list[Lease] = []
    while len(leases) < count:
        leases += queue.receive(10, 1, 30)
    return leases


def _batch_calls(aws_box: AwsSandbox) -> int:
    return aws_box.calls()["sqs.ChangeMessageVisibilityBatch"]


def test_extend_many_sends_ten_leases_a_call(aws_box: AwsSandbox, queue: SqsQueue) -> None:
    leases = _leases(queue, 23)
    before = _batch_calls(aws_box)

    assert queue.extend_many(leases, 120) == {}

    assert _batch_calls(aws_box) - before == 3  # 10 + 10 + 3
    assert queue.receive(10, 0, 30) == []
    assert queue.attributes()["ApproximateNumberOfMessagesNotVisible"] == "23"


def test_extend_many_maps_each_failed_entry(aws_box: AwsSandbox, queue: SqsQueue) -> None:
    kept, deleted = _leases(queue, 2)
    queue.delete(deleted)
    forged = dataclasses.replace(kept, message_id="forged", receipt_handle="not-a-receipt")
    before = _batch_calls(aws_box)

    failures = queue.extend_many([kept, deleted, forged], 120)

    assert _batch_calls(aws_box) - before == 1
    assert sorted(failures) == sorted([deleted.message_id, "forged"])
    assert all(isinstance(error, LeaseLostError) for error in failures.values())
    assert str(failures[deleted.message_id]) == (
        f"lease of message {deleted.message_id} lost: "
        "ReceiptHandleIsInvalid: The input receipt handle is invalid."
    )


def test_extend_many_past_the_largest_visibility_loses_every_lease(queue: SqsQueue) -> None:
    leases = _leases(queue, 2)

    failures = queue.extend_many(leases, 43201)  # each entry fails: InvalidParameterValue

    assert {key: str(error) for key, error in failures.items()} == {
        lease.message_id: (
            f"lease of message {lease.message_id} lost: "
            "InvalidParameterValue: Visibility timeout invalid"
        )
        for lease in leases
    }


def test_a_lease_that_fails_the_whole_batch_is_found_one_by_one(
    aws_box: AwsSandbox, queue: SqsQueue
) -> None:
    # moto refuses a visibility past 12 h since the send for the whole call, not per entry.
    leases = _leases(queue, 2)
    before = aws_box.calls()

    failures = queue.extend_many(leases, 43200)

    calls = aws_box.calls() - before
    assert (calls["sqs.ChangeMessageVisibilityBatch"], calls["sqs.ChangeMessageVisibility"]) == (
        1,
        2,
    )
    assert sorted(failures) == sorted(lease.message_id for lease in leases)
    error = failures[leases[0].message_id]
    assert isinstance(error, LeaseLostError)
    assert "Total VisibilityTimeout for the message is beyond the limit" in str(error)


def test_one_by_one_keeps_the_leases_that_are_fine() -> None:
    client = boto3.client(
        "sqs", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    url = "https://sqs.us-east-1.amazonaws.com/123456789012/q"
    fine, capped = Lease("a", "receipt-a", ""), Lease("b", "receipt-b", "")
    with Stubber(client) as stub:
        stub.add_client_error(
            "change_message_visibility_batch", "InvalidParameterValue", "beyond the limit"
        )
        stub.add_response("change_message_visibility", {})
        stub.add_client_error(
            "change_message_visibility", "InvalidParameterValue", "beyond the limit"
        )

        failures = SqsQueue(url, client).extend_many([fine, capped], 300)

        stub.assert_no_pending_responses()
    assert list(failures) == ["b"]
    assert str(failures["b"]) == "lease of message b lost: InvalidParameterValue: beyond the limit"


def test_extend_many_that_cannot_reach_sqs_fails_every_lease_transiently(
    aws_box: AwsSandbox, queue: SqsQueue, unreachable_client: Callable[[str], Any]
) -> None:
    leases = _leases(queue, 2)
    cut_off = SqsQueue(queue.url, unreachable_client("sqs"))

    failures = cut_off.extend_many(leases, 120)

    assert sorted(failures) == sorted(lease.message_id for lease in leases)
    for error in failures.values():
        assert type(error) is QueueError
        assert str(error).startswith("visibility change failed: Could not connect")


def test_lease_keeper_batches_against_sqs(aws_box: AwsSandbox, queue: SqsQueue) -> None:
    clock = [float(round(time.monotonic()))]
    lost: list[str] = []
    keeper = LeaseKeeper(
        queue, 30, lambda lease, _: lost.append(lease.message_id), clock=lambda: clock[0]
    )
    leases = _leases(queue, 12)
    for lease in leases:
        keeper.secure(lease)
    queue.delete(leases[5])
    before = _batch_calls(aws_box)

    clock[0] += 11  # less than two thirds of 30 s left
    keeper.tick()

    assert _batch_calls(aws_box) - before == 2  # 10 + 2 leases
    assert lost == [leases[5].message_id]
    assert keeper.expires_in(leases[0].message_id) == 30


def test_receive_has_a_client_of_its_own(
    aws_box: AwsSandbox, queue: SqsQueue, unreachable_client: Callable[[str], Any]
) -> None:
    split = SqsQueue(queue.url, unreachable_client("sqs"), receive_client=aws_box.client("sqs"))
    queue.send("a")

    [lease] = split.receive(10, 1, 30)

    assert lease.body == "a"
    assert lease.expires_at == pytest.approx(lease.received_at + 30)
    with pytest.raises(QueueError, match="Could not connect"):
        split.delete(lease)


def test_every_client_has_short_timeouts_but_the_long_poll_outlasts_its_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")

    queue = SqsQueue.create("https://sqs.eu-west-1.amazonaws.com/123456789012/q")

    short, long_poll = queue._client.meta.config, queue._receive_client.meta.config
    assert (short.connect_timeout, short.read_timeout) == (5, 10)
    assert long_poll.connect_timeout == 5
    assert long_poll.read_timeout >= LONG_POLL_MAX_SECONDS + 10
    assert short.retries == {"mode": "standard", "total_max_attempts": 5}
    assert long_poll.retries == {"mode": "standard", "total_max_attempts": 2}


@pytest.mark.timeout(120)
def test_a_server_that_never_answers_fails_the_call_after_the_read_timeout() -> None:
    # The kernel completes the handshake of a listening socket; nobody ever reads or answers.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        client = boto3.client(
            "sqs",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
            config=client_config(max_attempts=1),  # the worker's timeouts, one attempt
        )
        url = f"http://127.0.0.1:{port}/123456789012/q"
        started = time.monotonic()

        failures = SqsQueue(url, client).extend_many([Lease("a", "receipt-a", "")], 300)

        elapsed = time.monotonic() - started
    assert str(failures["a"]).startswith("visibility change failed: Read timeout on endpoint URL")
    assert type(failures["a"]) is QueueError
    assert elapsed < 45  # READ_TIMEOUT_SECONDS (10 s), far from botocore's default 60 s
