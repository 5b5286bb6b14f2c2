"""The sandbox's SQS: deletes from many threads at once leave nothing behind, and every
API call is counted at the endpoint.

moto rebuilds a queue's message list on delete without a lock; the sandbox makes it
hold the queue's lock. The race is narrow, so this test switches threads as often as
the interpreter allows, which makes it show on nearly every run without the fix.
"""

from __future__ import annotations

import sys
import threading
import uuid
from collections.abc import Iterator

import pytest
import requests

from remote_executor.sandbox.aws import AwsSandbox


@pytest.fixture
def frequent_thread_switches() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def test_concurrent_deletes_leave_no_message_in_flight(
    aws_box: AwsSandbox, frequent_thread_switches: None
) -> None:
    sqs = aws_box.client("sqs")
    url = aws_box.create_queue(f"deletes-{uuid.uuid4().hex[:6]}")
    for start in range(0, 200, 10):
        entries = [{"Id": str(n), "MessageBody": f"m{start + n}"} for n in range(10)]
        sqs.send_message_batch(QueueUrl=url, Entries=entries)
    handles: list[str] = []
    while len(handles) < 200:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=600)
        handles += [message["ReceiptHandle"] for message in got.get("Messages", [])]
    clients = [aws_box.client("sqs") for _ in range(16)]

    def delete(n: int) -> None:
        for handle in handles[n::16]:
            clients[n].delete_message(QueueUrl=url, ReceiptHandle=handle)

    threads = [threading.Thread(target=delete, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "0"
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_every_call_is_counted_whatever_its_protocol(aws_box: AwsSandbox) -> None:
    before = aws_box.calls()
    url = aws_box.create_queue(f"counted-{uuid.uuid4().hex[:6]}")
    sqs = aws_box.client("sqs")
    sqs.send_message(QueueUrl=url, MessageBody="a")  # boto3: the JSON protocol
    sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)
    aws_box.put_secret(f"counted-{uuid.uuid4().hex[:6]}", "value")
    # kombu's asynchronous SQS client speaks the query protocol, in a form body, signed:
    # the signature's credential scope names the service (moto 5.2.6 routes an unsigned
    # POST to / to S3).
    form = {"Action": "GetQueueAttributes", "QueueUrl": url, "AttributeName.1": "All"}
    signed = (
        "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/sqs/aws4_request, "
        "SignedHeaders=host, Signature=0"
    )
    answer = requests.post(
        aws_box.endpoint_url, data=form, headers={"Authorization": signed}, timeout=10
    )
    assert answer.status_code == 200

    counted = aws_box.calls() - before

    assert counted == {
        "sqs.CreateQueue": 1,
        "sqs.SendMessage": 1,
        "sqs.ReceiveMessage": 1,
        "secretsmanager.CreateSecret": 1,
        "sqs.GetQueueAttributes": 1,
    }
