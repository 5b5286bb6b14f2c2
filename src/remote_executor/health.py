"""``/healthz``, ``/readyz`` and ``/metrics`` on ``EXECUTOR_HEALTH_PORT``.

- ``/healthz`` (liveness): the receive loop ticked within ``stale_after_seconds``. A
  loop stuck anywhere turns it red, and the orchestrator restarts the worker.
- ``/readyz`` (readiness): the worker takes work (not draining, token accepted), the
  last periodic check found GMS answering ``/config`` with the token accepted, and the
  last receive from the queue succeeded.
- ``/metrics``: Prometheus text format, from the worker's own registry.

Each answers 200 or 503 with one line saying why, so ``curl`` tells a person too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from remote_executor.loops import Loop

log = structlog.get_logger(__name__)

_DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)
_WAIT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


class Renders(Protocol):
    """Metrics that /metrics serves: the worker's, or the bridge's."""

    def render(self) -> bytes: ...


class Metrics:
    """The worker's metrics, in a registry of its own (no process-wide state)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.received = Counter(
            "executor_tasks_received", "Messages received from the queue.", registry=r
        )
        self.finished = Counter(
            "executor_tasks_finished", "Tasks ended, by status.", ["status"], registry=r
        )
        self.duration = Histogram(
            "executor_task_duration_seconds",
            "Run time of finished tasks.",
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.running = Gauge("executor_tasks_running", "Tasks running now.", registry=r)
        self.free_slots = Gauge("executor_free_slots", "Slots free for another task.", registry=r)
        self.queue_wait = Histogram(
            "executor_queue_wait_seconds",
            "From a message's SentTimestamp to its receipt.",
            buckets=_WAIT_BUCKETS,
            registry=r,
        )
        self.gms_errors = Counter(
            "executor_gms_errors", "GMS calls that failed after their retries.", registry=r
        )
        self.aws_errors = Counter(
            "executor_aws_errors",
            "Queue calls that failed after their retries.",
            registry=r,
        )
        self.lease_extension_failures = Counter(
            "executor_lease_extension_failures",
            "Lease extensions that failed (retried until the lease runs out).",
            registry=r,
        )
        self.leases_lost = Counter(
            "executor_leases_lost",
            "Leases that could not be kept; their task was stopped.",
            registry=r,
        )
        self.progress_failures = Counter(
            "executor_progress_report_failures",
            "RUNNING heartbeats GMS did not accept.",
            registry=r,
        )
        self.cancel_poll_failures = Counter(
            "executor_cancel_poll_failures",
            "Reads of a running task's signal that failed.",
            registry=r,
        )
        self.messages_ended = Counter(
            "executor_messages_ended",
            "Messages ended, by outcome (acknowledge, release, dead-letter).",
            ["outcome"],
            registry=r,
        )
        self.loop_errors = Counter(
            "executor_loop_errors",
            "Iterations of a background loop that raised and were survived, by loop.",
            ["loop"],
            registry=r,
        )
        self.loop_restarts = Counter(
            "executor_loop_restarts",
            "Background loops restarted after an error escaped them, by loop.",
            ["loop"],
            registry=r,
        )
        self.leftover_processes_killed = Counter(
            "executor_leftover_processes_killed",
            "Processes a finished task left behind, killed by the worker.",
            registry=r,
        )
        self.secret_fetch = Histogram(
            "executor_secret_fetch_seconds",
            "Time to resolve a task's secrets.",
            buckets=_WAIT_BUCKETS,
            registry=r,
        )

    def observe_sent(self, sent_ms: int | None) -> None:
        """One message received; its time in the queue if SQS said when it was sent."""
        self.received.inc()
        if sent_ms is not None:
            self.queue_wait.observe(max(0.0, time.time() - sent_ms / 1000))

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)


class Readiness:
    """Re-checks GMS and the queue every ``interval_seconds``, in a thread of its own."""

    def __init__(
        self,
        checks: dict[str, Callable[[], object]],
        interval_seconds: float = 30.0,
    ) -> None:
        self._checks = checks
        self._interval = interval_seconds
        self._problem: str | None = "not checked yet"
        self._started = False
        # Each check catches its own errors: the loop survives whatever a check raises.
        self.loop = Loop("readiness", self.check_now, self._next_wait)

    @property
    def problem(self) -> str | None:
        """What the last check found wrong, or None."""
        return self._problem

    def check_now(self) -> None:
        """Run every check once."""
        for name, check in self._checks.items():
            try:
                check()
            except Exception as exc:  # any failure is a reason not to be ready
                if self._problem is None:
                    log.warning("readiness check failed", part=name, error=str(exc))
                self._problem = f"{name}: {exc}"
                return
        self._problem = None

    def start(self) -> None:
        """Check now, then every interval."""
        self.loop.start()

    def stop(self) -> None:
        """End the checks."""
        self.loop.stop(join_seconds=0)

    def _next_wait(self) -> float:
        if not self._started:
            self._started = True
            return 0.0
        return self._interval


class HealthServer:
    """Serves the three endpoints from a daemon thread."""

    def __init__(
        self,
        port: int,
        alive: Callable[[], str | None],
        ready: Callable[[], str | None],
        metrics: Renders,
        host: str = "0.0.0.0",
    ) -> None:
        self._routes: dict[str, Callable[[], tuple[int, str, bytes]]] = {
            "/healthz": lambda: _verdict(alive(), "alive"),
            "/readyz": lambda: _verdict(ready(), "ready"),
            "/metrics": lambda: (200, CONTENT_TYPE_LATEST, metrics.render()),
        }
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="health", daemon=True
        )

    @property
    def port(self) -> int:
        """The port it listens on (the one the OS chose for port 0)."""
        return int(self._server.server_address[1])

    def start(self) -> HealthServer:
        """Serve in the background."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port."""
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        routes = self._routes

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                route = routes.get(self.path.split("?", 1)[0])
                if route is None:
                    status, kind, body = 404, "text/plain", b"not found\n"
                else:
                    status, kind, body = route()
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass  # probes every few seconds would drown the worker's own log

        return Handler


def _verdict(problem: str | None, good: str) -> tuple[int, str, bytes]:
    if problem is None:
        return 200, "text/plain", f"{good}\n".encode()
    return 503, "text/plain", f"{problem}\n".encode()
