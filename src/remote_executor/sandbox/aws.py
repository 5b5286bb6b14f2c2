"""A local SQS + Secrets Manager endpoint: moto in server mode on loopback."""

from __future__ import annotations

import json
import logging
from typing import Any, cast

import boto3

REGION = "us-east-1"
# moto accepts any credentials; these make boto3's chain stop looking further.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "sandbox", "AWS_SECRET_ACCESS_KEY": "sandbox"}


def _serialize_sqs_deletes() -> None:
    """Make moto's DeleteMessage hold the queue's lock, as SendMessage does.

    moto's threaded server answers requests in threads, and its Queue.delete_message
    rebuilds the queue's message list without a lock: two deletes at once can put a
    deleted message back (still in flight, visible again after its timeout) and a
    send during a delete can be lost. Real SQS has no such race; a worker deleting
    from eight slots at once met it in the chaos tests.
    """
    from moto.sqs.models import Queue

    original = Queue.delete_message
    if getattr(original, "serialized_by_sandbox", False):
        return

    def delete_message(self: Any, receipt_handle: str) -> None:
        with self._messages_lock:
            original(self, receipt_handle)

    delete_message.serialized_by_sandbox = True  # type: ignore[attr-defined]
    Queue.delete_message = delete_message  # type: ignore[method-assign]


class AwsSandbox:
    """moto's threaded server, with the few calls the demo and tests need."""

    def __init__(self, port: int = 0) -> None:
        try:
            from moto.server import ThreadedMotoServer
        except ImportError as exc:  # the sandbox extra is optional
            raise RuntimeError(
                "the sandbox needs moto: pip install 'remote-executor[sandbox]'"
            ) from exc
        _serialize_sqs_deletes()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self.endpoint_url = ""

    def start(self) -> AwsSandbox:
        """Serve in a daemon thread."""
        # werkzeug logs every request of moto's server; the demo's output drowns in them.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._server.stop()

    def env(self) -> dict[str, str]:
        """What boto3 in another process needs to reach this endpoint."""
        return {"AWS_ENDPOINT_URL": self.endpoint_url, "AWS_REGION": REGION, **CREDENTIALS}

    def client(self, service: str) -> Any:
        """A boto3 client bound to this endpoint."""
        return cast(Any, boto3).client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def create_queue(self, name: str, dead_letter_url: str | None = None) -> str:
        """Create (or find) a queue, with a RedrivePolicy to ``dead_letter_url`` if given."""
        sqs = self.client("sqs")
        attributes = {}
        if dead_letter_url:
            target = sqs.get_queue_attributes(
                QueueUrl=dead_letter_url, AttributeNames=["QueueArn"]
            )["Attributes"]["QueueArn"]
            # SQS's own redrive, as a last resort behind the worker's EXECUTOR_MAX_ATTEMPTS.
            policy = {"deadLetterTargetArn": target, "maxReceiveCount": "10"}
            attributes["RedrivePolicy"] = json.dumps(policy)
        return str(sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])

    def put_secret(self, name: str, value: str) -> str:
        """Create a secret, or put a new version if it exists; its ARN."""
        client = self.client("secretsmanager")
        try:
            return str(client.create_secret(Name=name, SecretString=value)["ARN"])
        except client.exceptions.ResourceExistsException:
            return str(client.put_secret_value(SecretId=name, SecretString=value)["ARN"])
