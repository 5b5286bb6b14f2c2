"""/healthz, /readyz and /metrics over loopback HTTP, and `executor health`."""

from __future__ import annotations

import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import click
import pytest
from click.testing import CliRunner

from remote_executor import cli
from remote_executor import serve as serving
from remote_executor import worker as worker_module
from remote_executor.errors import QueueError
from remote_executor.gms import MemoryReporter
from remote_executor.health import HealthServer, Metrics, Readiness
from remote_executor.loops import MAX_RESTARTS
from remote_executor.models import request_urn
from remote_executor.processes import CHILDREN
from remote_executor.queue import MemoryQueue
from remote_executor.queue.base import Lease
from tests.unit.worker_support import message, terminal

Get = Callable[[str], tuple[int, str]]


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def serve() -> Iterator[Callable[..., HealthServer]]:
    servers: list[HealthServer] = []

    def start(
        alive: str | None = None, ready: str | None = None, metrics: Metrics | None = None
    ) -> HealthServer:
        server = HealthServer(0, lambda: alive, lambda: ready, metrics or Metrics(), "127.0.0.1")
        servers.append(server.start())
        return server

    yield start
    for server in servers:
        server.stop()


def test_alive_and_ready_answer_200(serve: Callable[..., HealthServer]) -> None:
    port = serve().port

    assert get(port, "/healthz") == (200, "alive\n")
    assert get(port, "/readyz") == (200, "ready\n")
    assert get(port, "/nothing")[0] == 404


def test_each_answers_503_with_the_reason(serve: Callable[..., HealthServer]) -> None:
    port = serve(alive="the receive loop has not gone round for 95 s", ready="draining").port

    assert get(port, "/healthz") == (503, "the receive loop has not gone round for 95 s\n")
    assert get(port, "/readyz") == (503, "draining\n")


def test_metrics_in_prometheus_text(serve: Callable[..., HealthServer]) -> None:
    metrics = Metrics()
    metrics.finished.labels("SUCCESS").inc()
    metrics.observe_sent(None)

    status, text = get(serve(metrics=metrics).port, "/metrics")

    assert status == 200
    assert 'executor_tasks_finished_total{status="SUCCESS"} 1.0' in text
    assert "executor_tasks_received_total 1.0" in text
    for name in (
        "executor_task_duration_seconds_bucket",
        "executor_tasks_running",
        "executor_free_slots",
        "executor_queue_wait_seconds_bucket",
        "executor_gms_errors_total",
        "executor_aws_errors_total",
        "executor_secret_fetch_seconds_bucket",
    ):
        assert name in text, name


def test_readiness_names_the_failing_part() -> None:
    def queue_down() -> None:
        raise RuntimeError("queue https://sqs.example/q: AccessDenied")

    readiness = Readiness({"gms": lambda: None, "queue": queue_down})
    assert readiness.problem == "not checked yet"

    readiness.check_now()
    assert readiness.problem == "queue: queue https://sqs.example/q: AccessDenied"

    fine = Readiness({"gms": lambda: None, "queue": lambda: None})
    fine.check_now()
    assert fine.problem is None


def test_a_worker_counts_what_it_does(
    running: Callable[..., Any], wait_for: Callable[..., bool], recipe_yaml: Callable[..., str]
) -> None:
    queue, reporter = MemoryQueue("memory://q"), MemoryReporter()
    queue.send(message("m-1", recipe_yaml({})))

    with running(queue, reporter, max_concurrent_tasks=3) as worker:
        assert wait_for(lambda: terminal(reporter, request_urn("m-1")))
        assert worker.not_ready_because is None
        text = worker.metrics.render().decode()

    assert 'executor_tasks_finished_total{status="SUCCESS"} 1.0' in text
    assert "executor_tasks_received_total 1.0" in text
    assert "executor_task_duration_seconds_count 1.0" in text
    assert "executor_tasks_running 0.0" in text
    assert worker.not_ready_because == "draining: the worker is stopping"


class FlakyQueue(MemoryQueue):
    """A queue whose receive fails while ``down`` is set."""

    def __init__(self) -> None:
        super().__init__("memory://flaky")
        self.down = threading.Event()
        self.down.set()
        self.receives = 0

    def receive(self, *args: Any) -> list[Lease]:
        self.receives += 1
        if self.down.is_set():
            raise QueueError("receive from memory://flaky failed: AccessDenied")
        return super().receive(*args)


def test_readiness_checks_the_queue_by_the_last_receive(
    running: Callable[..., Any], wait_for: Callable[..., bool]
) -> None:
    queue = FlakyQueue()
    with running(queue, MemoryReporter()) as worker:
        readiness = Readiness({"queue": worker.check_queue})
        assert wait_for(lambda: queue.receives > 0)
        readiness.check_now()
        assert readiness.problem == "queue: receive from memory://flaky failed: AccessDenied"

        queue.down.clear()
        received = queue.receives
        assert wait_for(lambda: queue.receives > received + 1)
        readiness.check_now()
        assert readiness.problem is None


class StuckQueue(MemoryQueue):
    """A queue whose receive never returns, as a hung connection would."""

    def __init__(self) -> None:
        super().__init__("memory://stuck")
        self.release_receive = threading.Event()

    def receive(self, *_: Any) -> list[Lease]:
        self.release_receive.wait(30)
        return []


@pytest.fixture
def stuck(
    running: Callable[..., Any],
    wait_for: Callable[..., bool],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[StuckQueue, Any, HealthServer]]:
    """A worker whose receive hangs, with its health server, once /healthz has turned red."""
    monkeypatch.setattr(serving, "LOOP_STALE_SECONDS", 0.5)
    queue = StuckQueue()
    with running(queue, MemoryReporter()) as worker:
        server = serving.health_server(0, worker, Readiness({}))
        try:
            assert wait_for(lambda: get(server.port, "/healthz")[0] == 503)
            yield queue, worker, server
        finally:
            queue.release_receive.set()
            server.stop()


def test_a_stuck_receive_loop_turns_healthz_red(
    stuck: tuple[StuckQueue, Any, HealthServer], wait_for: Callable[..., bool]
) -> None:
    queue, _, server = stuck
    _, text = get(server.port, "/healthz")
    assert text.startswith("the receive loop has not gone round for ")
    queue.release_receive.set()
    assert wait_for(lambda: get(server.port, "/healthz")[0] == 200)


def test_a_draining_worker_stays_alive(stuck: tuple[StuckQueue, Any, HealthServer]) -> None:
    # The drain stops the loop on purpose; a liveness probe must not kill it mid-drain.
    _, worker, server = stuck
    worker.stop()

    assert get(server.port, "/healthz") == (200, "alive\n")
    assert get(server.port, "/readyz") == (503, "draining: the worker is stopping\n")


def test_health_is_served_while_the_start_up_checks_run(
    monkeypatch: pytest.MonkeyPatch, wait_for: Callable[..., bool]
) -> None:
    # The start-up GMS check may retry for a minute: a startup probe must see the worker.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    checking, finish = threading.Event(), threading.Event()

    def slow_check(*_: Any) -> None:
        checking.set()
        finish.wait(20)
        raise click.ClickException("GMS check gave up")

    monkeypatch.setattr(serving, "check_at_start", slow_check)
    environment = {
        "DATAHUB_GMS_URL": "http://127.0.0.1:9/gms",
        "EXECUTOR_QUEUE_URL": "http://127.0.0.1:9/123456789012/q",
        "AWS_REGION": "eu-west-1",
        "EXECUTOR_HEALTH_PORT": str(port),
    }
    result: list[Any] = []
    thread = threading.Thread(
        target=lambda: result.append(CliRunner().invoke(cli.main, ["run"], env=environment))
    )
    thread.start()
    try:
        assert checking.wait(20)
        assert wait_for(lambda: get(port, "/healthz") == (200, "alive\n"))
        assert get(port, "/readyz") == (503, "not checked yet\n")
    finally:
        finish.set()
        thread.join(20)
    assert "GMS check gave up" in result[0].output
    with pytest.raises(urllib.error.URLError):  # the server stopped with the worker
        get(port, "/healthz")


def test_port_in_use_is_a_clear_error(running: Callable[..., Any]) -> None:
    with running(MemoryQueue("memory://q"), MemoryReporter()) as worker:
        first = serving.health_server(0, worker, Readiness({}))
        try:
            with pytest.raises(Exception, match=r"cannot serve /healthz on port \d+: .*"):
                serving.health_server(first.port, worker, Readiness({}))
        finally:
            first.stop()


def test_executor_health_exit_codes(
    serve: Callable[..., HealthServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    healthy, stuck = serve().port, serve(alive="the receive loop is stuck").port

    monkeypatch.setenv("EXECUTOR_HEALTH_PORT", str(healthy))
    assert CliRunner().invoke(cli.main, ["health"]).exit_code == 0
    monkeypatch.setenv("EXECUTOR_HEALTH_PORT", str(stuck))
    result = CliRunner().invoke(cli.main, ["health"])
    assert result.exit_code == 1
    assert "not healthy: the receive loop is stuck" in result.output
    monkeypatch.setenv("EXECUTOR_HEALTH_PORT", "9")  # discard: nobody answers there
    result = CliRunner().invoke(cli.main, ["health"])
    assert result.exit_code == 1
    assert "no worker answers at http://127.0.0.1:9/healthz" in result.output


def test_a_background_loop_that_keeps_dying_turns_healthz_red(
    running: Callable[..., Any],
    wait_for: Callable[..., bool],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken() -> int:
        raise SystemExit("the reaper's bug")  # escapes the guard of one iteration

    monkeypatch.setattr(threading, "excepthook", lambda _args: None)
    monkeypatch.setattr(worker_module, "REAP_SECONDS", 0.01)
    monkeypatch.setattr(CHILDREN, "reap_orphans", broken)
    with running(MemoryQueue(), MemoryReporter()) as worker:
        server = serving.health_server(0, worker, Readiness({}))
        try:
            assert wait_for(lambda: get(server.port, "/healthz")[0] == 503)
            assert get(server.port, "/healthz")[1] == (
                'background loop reaper died: SystemExit("the reaper\'s bug")\n'
            )
            sample = worker.metrics.registry.get_sample_value
            assert sample("executor_loop_restarts_total", {"loop": "reaper"}) == MAX_RESTARTS
        finally:
            server.stop()
