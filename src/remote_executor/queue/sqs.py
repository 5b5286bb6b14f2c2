"""SqsQueue: the Queue role on AWS SQS (or any endpoint that speaks its API)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from remote_executor.aws import CLIENT_CONFIG, RECEIVE_CONFIG, describe, error_code
from remote_executor.errors import ConfigurationError, LeaseLostError, QueueError
from remote_executor.queue.base import ExtendFailures, Lease, extend_each

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import (
        BatchResultErrorEntryTypeDef,
        ChangeMessageVisibilityBatchRequestEntryTypeDef,
    )

# Errors that mean the receipt no longer holds the message, so retrying cannot help.
# InvalidParameterValue is also SQS's answer to a visibility past the 12 hour cap.
_LEASE_GONE = {
    "ReceiptHandleIsInvalid",
    "InvalidParameterValue",
    "AWS.SimpleQueueService.MessageNotInflight",
    "MessageNotInflight",
}
# SQS takes at most 10 entries in one ChangeMessageVisibilityBatch.
MAX_BATCH_ENTRIES = 10
MAX_REASON_CHARS = 1000
_REGION_IN_URL = re.compile(r"^https://(?:sqs\.)?([a-z]{2}(?:-[a-z]+)+-\d)\.")
_SYSTEM_ATTRIBUTES: Any = [
    "ApproximateReceiveCount",
    "ApproximateFirstReceiveTimestamp",
    "SentTimestamp",
]


def region_from_url(queue_url: str) -> str | None:
    """The region of an AWS queue URL (https://sqs.eu-west-1.amazonaws.com/...), if it has one."""
    match = _REGION_IN_URL.match(queue_url)
    return match.group(1) if match else None


class SqsQueue:
    """One SQS queue; every call is wrapped into QueueError or LeaseLostError.

    ``receive_client`` makes the long polls (a read timeout longer than the poll, see
    ``remote_executor.aws``), ``client`` every other call; one client does both if only
    one is given.
    """

    def __init__(
        self,
        queue_url: str,
        client: SQSClient,
        dead_letter_url: str | None = None,
        *,
        receive_client: SQSClient | None = None,
    ) -> None:
        self._url = queue_url
        self._client = client
        self._receive_client = receive_client or client
        self._dead_letter_url = dead_letter_url

    @classmethod
    def create(
        cls, queue_url: str, region: str | None = None, dead_letter_url: str | None = None
    ) -> SqsQueue:
        """A queue with a client from boto3's configuration, in the region of an AWS queue URL.

        The URL's region wins over ``region``: SQS answers NonExistentQueue to a client of
        another region, and a DataHub queue often lives in another region than the worker.
        """
        # One session for both clients, so that they share one set of credentials.
        session = boto3.session.Session()
        region = region_from_url(queue_url) or region or session.region_name
        try:
            client = session.client("sqs", region_name=region, config=CLIENT_CONFIG)
            receive_client = session.client("sqs", region_name=region, config=RECEIVE_CONFIG)
        except BotoCoreError as exc:
            raise ConfigurationError(
                f"cannot use the queue {queue_url}: {exc}; set AWS_REGION"
            ) from exc
        return cls(queue_url, client, dead_letter_url, receive_client=receive_client)

    @property
    def url(self) -> str:
        return self._url

    def receive(self, max_messages: int, wait_seconds: int, lease_seconds: int) -> list[Lease]:
        started = time.monotonic()  # SQS starts the visibility timeout no earlier
        try:
            response = self._receive_client.receive_message(
                QueueUrl=self._url,
                MaxNumberOfMessages=max(1, min(10, max_messages)),
                WaitTimeSeconds=wait_seconds,
                VisibilityTimeout=lease_seconds,
                MessageSystemAttributeNames=_SYSTEM_ATTRIBUTES,
            )
        except (ClientError, BotoCoreError) as exc:
            raise QueueError(f"receive from {self._url} failed: {describe(exc)}") from exc
        return [
            self._lease(message, started, started + lease_seconds)
            for message in response.get("Messages", [])
        ]

    def extend(self, lease: Lease, lease_seconds: int) -> None:
        self._change_visibility(lease, lease_seconds)

    def extend_many(self, leases: Sequence[Lease], lease_seconds: int) -> ExtendFailures:
        """ChangeMessageVisibilityBatch, 10 leases a call; each Failed entry by its Code."""
        failures: ExtendFailures = {}
        for start in range(0, len(leases), MAX_BATCH_ENTRIES):
            chunk = leases[start : start + MAX_BATCH_ENTRIES]
            failures.update(self._extend_chunk(chunk, lease_seconds))
        return failures

    def _extend_chunk(self, chunk: Sequence[Lease], seconds: int) -> ExtendFailures:
        entries: list[ChangeMessageVisibilityBatchRequestEntryTypeDef] = [
            {"Id": str(n), "ReceiptHandle": lease.receipt_handle, "VisibilityTimeout": seconds}
            for n, lease in enumerate(chunk)
        ]
        try:
            response = self._client.change_message_visibility_batch(
                QueueUrl=self._url, Entries=entries
            )
        except ClientError as exc:
            if error_code(exc) in _LEASE_GONE and len(chunk) > 1:
                # One entry can fail the whole call (moto answers a visibility past the
                # 12 hour cap so): one call each tells which lease it was.
                return self._extend_one_by_one(chunk, seconds)
            return self._all_failed(chunk, exc)
        except BotoCoreError as exc:
            return self._all_failed(chunk, exc)
        succeeded = {entry["Id"] for entry in response.get("Successful", [])}
        failed = {entry["Id"]: entry for entry in response.get("Failed", [])}
        return {
            lease.message_id: _entry_error(lease, failed.get(str(n)))
            for n, lease in enumerate(chunk)
            if str(n) not in succeeded
        }

    def _extend_one_by_one(self, chunk: Sequence[Lease], seconds: int) -> ExtendFailures:
        return extend_each(chunk, lambda lease: self._change_visibility(lease, seconds))

    @staticmethod
    def _all_failed(chunk: Sequence[Lease], exc: ClientError | BotoCoreError) -> ExtendFailures:
        if isinstance(exc, ClientError) and error_code(exc) in _LEASE_GONE:
            error: QueueError = LeaseLostError(
                f"lease of message {chunk[0].message_id} lost: {describe(exc)}"
            )
        else:
            error = QueueError(f"visibility change failed: {describe(exc)}")
        error.__cause__ = exc
        return {lease.message_id: error for lease in chunk}

    def release(self, lease: Lease, delay_seconds: int = 0) -> None:
        self._change_visibility(lease, delay_seconds)

    def delete(self, lease: Lease) -> None:
        try:
            self._client.delete_message(QueueUrl=self._url, ReceiptHandle=lease.receipt_handle)
        except (ClientError, BotoCoreError) as exc:
            raise QueueError(
                f"delete of message {lease.message_id} failed: {describe(exc)}"
            ) from exc

    @property
    def dead_letter_url(self) -> str | None:
        return self._dead_letter_url

    def find_dead_letter_queue(self) -> str | None:
        """Use the queue's own RedrivePolicy target unless a dead-letter URL was given."""
        if self._dead_letter_url is None:
            policy = json.loads(self.attributes().get("RedrivePolicy") or "{}")
            target = str(policy.get("deadLetterTargetArn", ""))
            parts = target.split(":")
            if len(parts) == 6 and parts[2] == "sqs":
                try:
                    response = self._client.get_queue_url(
                        QueueName=parts[5], QueueOwnerAWSAccountId=parts[4]
                    )
                except (ClientError, BotoCoreError) as exc:
                    raise QueueError(
                        f"dead-letter queue {target} of {self._url}: {describe(exc)}"
                    ) from exc
                self._dead_letter_url = response["QueueUrl"]
        return self._dead_letter_url

    def dead_letter(self, lease: Lease, reason: str) -> None:
        if self._dead_letter_url is None:
            raise QueueError(f"{self._url} has no dead-letter queue")
        attributes: Any = {
            "reason": {"DataType": "String", "StringValue": reason[:MAX_REASON_CHARS]},
            "source_message_id": {"DataType": "String", "StringValue": lease.message_id},
            "receive_count": {"DataType": "Number", "StringValue": str(lease.receive_count)},
        }
        try:
            self._client.send_message(
                QueueUrl=self._dead_letter_url,
                MessageBody=lease.body or "(empty body)",
                MessageAttributes=attributes,
            )
        except (ClientError, BotoCoreError) as exc:
            raise QueueError(
                f"send to the dead-letter queue {self._dead_letter_url} failed: {describe(exc)}"
            ) from exc
        self.delete(lease)

    def send(self, body: str) -> str:
        try:
            response = self._client.send_message(QueueUrl=self._url, MessageBody=body)
        except (ClientError, BotoCoreError) as exc:
            raise QueueError(f"send to {self._url} failed: {describe(exc)}") from exc
        return response["MessageId"]

    def attributes(self) -> dict[str, str]:
        try:
            response = self._client.get_queue_attributes(QueueUrl=self._url, AttributeNames=["All"])
        except (ClientError, BotoCoreError) as exc:
            raise QueueError(f"queue {self._url}: {describe(exc)}") from exc
        return {str(key): value for key, value in response.get("Attributes", {}).items()}

    def _change_visibility(self, lease: Lease, seconds: int) -> None:
        try:
            self._client.change_message_visibility(
                QueueUrl=self._url, ReceiptHandle=lease.receipt_handle, VisibilityTimeout=seconds
            )
        except ClientError as exc:
            if error_code(exc) in _LEASE_GONE:
                raise LeaseLostError(
                    f"lease of message {lease.message_id} lost: {describe(exc)}"
                ) from exc
            raise QueueError(f"visibility change failed: {describe(exc)}") from exc
        except BotoCoreError as exc:
            raise QueueError(f"visibility change failed: {exc}") from exc

    @staticmethod
    def _lease(message: Any, received_at: float, expires_at: float) -> Lease:
        attrs = message.get("Attributes", {})
        first = attrs.get("ApproximateFirstReceiveTimestamp")
        sent = attrs.get("SentTimestamp")
        return Lease(
            message_id=message["MessageId"],
            receipt_handle=message["ReceiptHandle"],
            body=message.get("Body", ""),
            receive_count=int(attrs.get("ApproximateReceiveCount", "1")),
            first_receive_ms=int(first) if first else None,
            sent_ms=int(sent) if sent else None,
            received_at=received_at,
            expires_at=expires_at,
        )


def _entry_error(lease: Lease, entry: BatchResultErrorEntryTypeDef | None) -> QueueError:
    """The error of one lease a batch did not extend: lost if its Code says it is gone."""
    if entry is None:
        return QueueError(
            f"visibility change of message {lease.message_id} failed: "
            "SQS answered neither success nor failure for it"
        )
    code = entry.get("Code", "")
    text = f"{code}: {entry.get('Message', '')}".rstrip(": ")
    if code in _LEASE_GONE:
        return LeaseLostError(f"lease of message {lease.message_id} lost: {text}")
    return QueueError(f"visibility change of message {lease.message_id} failed: {text}")
