"""A local SQS + Secrets Manager endpoint: moto in server mode on loopback."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, cast
from urllib.parse import parse_qs

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


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _CallCounter:
    """WSGI middleware in front of moto: counts every API call, as ``sqs.ReceiveMessage``.

    Counted at the endpoint, so that a benchmark sees every call a client made, retries
    included, whichever SDK or protocol (JSON or query) made it.
    """

    def __init__(self, app: WsgiApp) -> None:
        self._app = app
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        name = _call_name(environ)
        with self._lock:
            self._counts[name] += 1
        return self._app(environ, start_response)

    def counts(self) -> Counter[str]:
        with self._lock:
            return Counter(self._counts)


def _call_name(environ: dict[str, Any]) -> str:
    """``service.Action`` of one request: from X-Amz-Target (JSON) or Action (query)."""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        prefix, _, action = target.partition(".")
        service = "sqs" if prefix == "AmazonSQS" else prefix.lower()
        return f"{service}.{action}"
    actions = parse_qs(environ.get("QUERY_STRING", "")).get("Action")
    if not actions and environ.get("CONTENT_TYPE", "").startswith(
        "application/x-www-form-urlencoded"
    ):
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)  # put back for moto
        actions = parse_qs(body.decode("utf-8", "replace")).get("Action")
    # Query-protocol calls name no service; on this endpoint only SQS speaks it.
    return f"sqs.{actions[0]}" if actions else "other"


class AwsSandbox:
    """moto's server on loopback in a daemon thread, with the few calls the demo and tests
    need, counting the API calls it answers."""

    def __init__(self, port: int = 0) -> None:
        try:
            from moto.moto_server.werkzeug_app import (
                DomainDispatcherApplication,
                create_backend_app,
            )
        except ImportError as exc:  # the sandbox extra is optional
            raise RuntimeError(
                "the sandbox needs moto: pip install 'remote-executor[sandbox]'"
            ) from exc
        _serialize_sqs_deletes()
        self._port = port
        self._counter = _CallCounter(DomainDispatcherApplication(create_backend_app))
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.endpoint_url = ""

    def start(self) -> AwsSandbox:
        """Serve in a daemon thread."""
        from moto.moto_server.werkzeug_app import MotoRequestHandler
        from werkzeug.serving import make_server

        # werkzeug logs every request of moto's server; the demo's output drowns in them.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)

        class Handler(MotoRequestHandler):
            # As in the GMS stand-in (loopback.py): no 40 ms wait for a delayed ACK per call.
            disable_nagle_algorithm = True

        # Threaded, as moto's own ThreadedMotoServer: a long poll must not block other calls.
        self._server = make_server(
            "127.0.0.1",
            self._port,
            self._counter,
            threaded=True,
            request_handler=Handler,
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="aws-sandbox", daemon=True
        )
        self._thread.start()
        host, port = self._server.server_address[:2]
        self.endpoint_url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server, self._thread = None, None

    def calls(self) -> Counter[str]:
        """How many API calls of each kind were answered so far, as ``sqs.ReceiveMessage``."""
        return self._counter.counts()

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
