"""SqsQueue against moto's SQS on loopback."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from remote_executor.errors import LeaseLostError, QueueError
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
