"""The Celery peer's app: one task on kombu's SQS transport, for benchmark 1.

Benchmark 1 measures dispatch latency; for Celery that is ``apply_async`` to the task
body starting. The one task, ``started``, appends ``"<task id> <time.time()>"`` to a file
as its first action; bench/celery_peer.py reads the file. No result backend.

The benchmark configures the app through the environment of the worker it starts
(``celery -A bench.celery_app worker``):

- ``BENCH_SQS_PORT``: moto's port on loopback. The broker URL is
  ``sqs://sandbox:sandbox@127.0.0.1:PORT//``; kombu builds the endpoint from its host
  and port, over plain http, because ``is_secure`` is unset
  (kombu/transport/SQS/__init__.py, ``Channel.endpoint_url``), and hands it to boto3 as
  ``endpoint_url``, whose scheme wins over ``use_ssl`` (``Channel._new_boto_client``).
  The async receive path posts to that same client's ``_endpoint.host``
  (kombu/asynchronous/aws/sqs/connection.py). ``AWS_ENDPOINT_URL_SQS`` is not needed:
  an explicit ``endpoint_url`` overrides it.
- ``BENCH_CELERY_QUEUE``: the queue, unique per run. kombu creates it when it is first
  declared (kombu/transport/SQS/__init__.py, ``Channel._new_queue``), with ``.`` turned
  into ``-`` and other punctuation but ``-`` into ``_`` (``CHARS_REPLACE_TABLE`` there).
- ``BENCH_CELERY_OPTIONS``: JSON, ``broker_transport_options`` added to the region
  (us-east-1); ``{}`` keeps kombu's defaults, which are, in kombu 5.7.0:

  - ``wait_time_seconds`` 10, the long poll of each ReceiveMessage
    (kombu/transport/SQS/__init__.py, ``Channel.default_wait_time_seconds``);
  - ``polling_interval`` 1 second, waited after an empty poll before the next one
    (``Transport.polling_interval`` there; kombu/transport/virtual/base.py,
    ``Transport.__init__``, reads the option);
  - ``visibility_timeout`` 1800 seconds, set on the queue kombu creates
    (``Channel.default_visibility_timeout``);
  - ``region``: the option, else boto3's configured region, else us-east-1
    (``Channel.region``).
- ``BENCH_CELERY_STARTS``: the file the task appends its start to.

Importing this module reads no environment: ``app``, which ``celery -A`` looks up, is
built on that first lookup; the producer builds its own with ``create_app``.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Mapping
from typing import Any

from celery import Celery

REGION = "us-east-1"
STARTED_TASK = "bench.celery_app.started"


def settings(environ: Mapping[str, str]) -> dict[str, Any]:
    """The Celery settings the benchmark's variables in ``environ`` describe."""
    options = json.loads(environ["BENCH_CELERY_OPTIONS"])
    return {
        "broker_url": f"sqs://sandbox:sandbox@127.0.0.1:{int(environ['BENCH_SQS_PORT'])}//",
        "broker_transport_options": {"region": REGION, **options},
        # Celery 5 warns at start-up unless this is set; True is its current behaviour.
        "broker_connection_retry_on_startup": True,
        "task_default_queue": environ["BENCH_CELERY_QUEUE"],
        "task_ignore_result": True,
        "result_backend": None,
    }


def create_app(environ: Mapping[str, str]) -> Celery:
    """A Celery app with the task ``started``, for the endpoint and queue in ``environ``."""
    app = Celery("bench_celery")
    app.conf.update(settings(environ))
    starts_path = environ["BENCH_CELERY_STARTS"]

    @app.task(name=STARTED_TASK, shared=False)
    def started(task_id: str) -> None:
        """Record this task's start: one line, one write, so concurrent lines stay whole."""
        line = f"{task_id} {time.time()}\n"
        with open(starts_path, "a", encoding="utf-8") as starts:
            starts.write(line)

    return app


@functools.cache
def _worker_app() -> Celery:
    return create_app(os.environ)


def __getattr__(name: str) -> Celery:
    # `celery -A bench.celery_app` asks this module for `app`: the worker's app is built
    # then, from the variables the benchmark gave the worker's process.
    if name == "app":
        return _worker_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
