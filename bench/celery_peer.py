"""The Celery peer of benchmark 1, dispatch latency: ``apply_async`` to the task body starting.

Benchmark 1 (bench/dispatch.py) times how long a request waits before an executor starts
on it, under sparse traffic: one task at a time, after a random pause, so that each one
finds the consumer idle in its long poll. This is the same measure for Celery 5 on
kombu's SQS transport against the same local endpoint (moto on loopback): from just
before ``apply_async`` in this process to the first line of the task's body in a real
``celery worker`` (prefork pool, one child), which appends its ``time.time()`` to a file
(bench/celery_app.py). Both ends read the wall clock, the one clock the processes share.

What the latency holds: SendMessage from this process, the worker's pending ReceiveMessage
returning, kombu and Celery handing the message to the pool, and the child starting it.
Between tasks this process only sleeps, so the worker sees no other traffic. When moto
serves from this process too (the benchmark's sandbox), its handling of SendMessage shares
this process's CPU and GIL: on a busy machine that, not Celery, is most of the time.

The worker counts as ready when a first warm-up task has started: that proves the queue
exists, the worker consumes it and its pool runs tasks, and it pays the one-off costs
(connections, the producer's ListQueues) before any task is timed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import deque
from pathlib import Path
from urllib.parse import urlsplit

import boto3

from bench.celery_app import REGION, STARTED_TASK, create_app

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_SECONDS = 60.0  # the worker's start-up and the warm-up task
START_TIMEOUT_SECONDS = 60.0
STOP_GRACE_SECONDS = 15.0
DRAIN_TIMEOUT_SECONDS = 10.0
# How often the starts file is read while waiting; it only delays noticing a start,
# not the start time recorded, so it is kept coarse enough to leave the CPUs alone.
POLL_SECONDS = 0.002
LOG_TAIL_LINES = 40


class CeleryPeerError(RuntimeError):
    """The Celery worker exited, or a task did not start in time; with its log's tail."""


class CeleryWorker:
    """A ``celery worker`` subprocess, in a process group of its own with its pool."""

    def __init__(self, environ: dict[str, str], log_path: Path) -> None:
        command = [
            *(sys.executable, "-m", "celery", "-A", "bench.celery_app", "worker"),
            *("--pool", "prefork", "--concurrency", "1", "--loglevel", "WARNING"),
            *("--without-heartbeat", "--without-gossip", "--without-mingle"),
            *("--hostname", f"{environ['BENCH_CELERY_QUEUE']}@%h"),
        ]
        python_path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env={**os.environ, **environ, "PYTHONPATH": python_path},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def tail(self) -> str:
        """The last lines of the worker's log."""
        with self.log_path.open(encoding="utf-8", errors="replace") as log:
            return "".join(deque(log, maxlen=LOG_TAIL_LINES))

    def check_alive(self) -> None:
        """Raise if the worker has exited."""
        code = self.process.poll()
        if code is not None:
            raise CeleryPeerError(
                f"the Celery worker exited with code {code}; the tail of "
                f"{self.log_path}:\n{self.tail()}"
            )

    def stop(self) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL to the group for whatever is left of it."""
        if self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(STOP_GRACE_SECONDS)
        # The worker if it outlasted the grace, or a pool child that outlived its parent:
        # billiard's children do not exit when the main process is killed.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


class StartsFile:
    """The file the task appends ``"<task id> <start time>"`` to, read as it grows."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._starts: dict[str, float] = {}

    def wait_for(self, task_id: str, worker: CeleryWorker, timeout_seconds: float) -> float:
        """The start time of ``task_id``, once its line is written."""
        deadline = time.monotonic() + timeout_seconds
        while task_id not in self._starts:
            worker.check_alive()
            if time.monotonic() > deadline:
                raise CeleryPeerError(
                    f"task {task_id} did not start within {timeout_seconds:.0f} s; the tail "
                    f"of {worker.log_path}:\n{worker.tail()}"
                )
            time.sleep(POLL_SECONDS)
            self._read()
        return self._starts[task_id]

    def _read(self) -> None:
        if not self.path.exists():
            return
        with self.path.open("rb") as starts:
            starts.seek(self._offset)
            text = starts.read()
        complete = text[: text.rfind(b"\n") + 1]  # a line still being written waits
        self._offset += len(complete)
        for line in complete.decode().splitlines():
            task_id, started = line.split()
            self._starts[task_id] = float(started)


def _wait_until_acknowledged(endpoint_url: str, queue: str) -> None:
    """Wait until no message of ``queue`` is left, in flight or not, for a while at most.

    The stop waits for this because a warm stop that comes as soon as the last task
    started can find the worker before it has read its pool child's last messages: the
    task's message is then restored to the queue, and the child waits up to 30 s for its
    last result to be read (billiard/pool.py, ``Worker._ensure_messages_consumed``), past
    the grace. The ack is DeleteMessage, sent once the child has accepted the task.
    """
    sqs = boto3.client(
        "sqs",
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id="sandbox",
        aws_secret_access_key="sandbox",
    )
    url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
        if all(int(counts[name]) == 0 for name in names):
            return
        time.sleep(0.01)


def _loopback_port(endpoint_url: str) -> int:
    """The port of moto's ``http://127.0.0.1:PORT``: the broker URL names only the port."""
    parts = urlsplit(endpoint_url)
    if parts.scheme != "http" or parts.hostname != "127.0.0.1" or parts.port is None:
        raise ValueError(f"the Celery peer needs http://127.0.0.1:PORT, not {endpoint_url}")
    return parts.port


def celery_dispatch(
    endpoint_url: str, options: dict[str, object], gaps: list[float], work_dir: Path
) -> list[float]:
    """Latencies in seconds, in order, of one task sent after each gap to a Celery worker.

    ``options`` are kombu's ``broker_transport_options`` (``{}`` for its defaults). The
    worker's log and the starts file stay in ``work_dir``.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    queue = f"bench-celery-{uuid.uuid4().hex[:12]}"  # a fresh queue: nothing left over
    environ = {
        "BENCH_SQS_PORT": str(_loopback_port(endpoint_url)),
        "BENCH_CELERY_QUEUE": queue,
        "BENCH_CELERY_OPTIONS": json.dumps(options),
        "BENCH_CELERY_STARTS": str(work_dir / f"{queue}.starts"),
    }
    app = create_app(environ)  # the producer, on the same endpoint and queue
    started = app.tasks[STARTED_TASK]
    starts = StartsFile(Path(environ["BENCH_CELERY_STARTS"]))
    worker = CeleryWorker(environ, work_dir / f"{queue}.log")
    try:
        started.apply_async(args=["warm-up"])
        starts.wait_for("warm-up", worker, READY_TIMEOUT_SECONDS)
        latencies = []
        for n, gap in enumerate(gaps):
            time.sleep(gap)
            task_id = f"task-{n}"
            sent = time.time()
            started.apply_async(args=[task_id])
            latencies.append(starts.wait_for(task_id, worker, START_TIMEOUT_SECONDS) - sent)
        _wait_until_acknowledged(endpoint_url, queue)
        return latencies
    finally:
        worker.stop()
        app.close()
