"""The thread that watches running tasks for KILL signals from GMS.

The cancel watcher is one thread for all running tasks. Each round reads the
signal of every running task, spread evenly over the poll interval, so GMS
sees a steady trickle of one request at a time instead of bursts as tasks pile
up, and a KILL is noticed within about one interval.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog

from remote_executor.errors import GmsAuthError, GmsError
from remote_executor.gms import Reporter
from remote_executor.health import Metrics
from remote_executor.loops import Loop
from remote_executor.task import Task

log = structlog.get_logger("remote_executor.watch")


def describe_kill(signal_value: dict[str, Any]) -> str | None:
    """``KILL signal from <actor> at <time>`` if the aspect asks to kill; None otherwise."""
    if signal_value.get("signal") != "KILL":
        return None
    created = signal_value.get("createdAt")
    created = created if isinstance(created, dict) else {}
    actor = created.get("actor") or "an unknown actor"
    at = created.get("time")
    when = (
        datetime.fromtimestamp(at / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        if isinstance(at, int)
        else "an unknown time"
    )
    return f"KILL signal from {actor} at {when}"


class CancelWatcher:
    """Polls the signal aspect of running tasks and calls ``on_kill`` for a KILL."""

    def __init__(
        self,
        reporter: Reporter,
        interval_seconds: float,
        on_kill: Callable[[Task, str], None],
        on_auth_error: Callable[[GmsAuthError], None],
        metrics: Metrics | None = None,
    ) -> None:
        self._reporter = reporter
        self._interval = interval_seconds
        self._on_kill = on_kill
        self._on_auth_error = on_auth_error
        self._metrics = metrics or Metrics()
        self._tasks: dict[str, Task] = {}
        self._lock = threading.Lock()
        self.loop = Loop(
            "cancel-watcher",
            self.poll_round,
            0.0,
            on_error=lambda name, _: self._metrics.loop_errors.labels(name).inc(),
        )

    def start(self) -> CancelWatcher:
        """Start polling."""
        self.loop.start()
        return self

    def stop(self) -> None:
        """Stop polling."""
        self.loop.stop()

    def watch(self, task: Task) -> None:
        """Poll this task's signal until ``forget``."""
        with self._lock:
            self._tasks[task.identity] = task

    def forget(self, task: Task) -> None:
        """Stop polling this task's signal."""
        with self._lock:
            self._tasks.pop(task.identity, None)

    def poll_round(self) -> None:
        """Read every watched task's signal once, spread over one interval."""
        with self._lock:
            tasks = list(self._tasks.values())
        stopping = self.loop.stopping
        if not tasks:
            stopping.wait(self._interval)
            return
        gap = self._interval / len(tasks)
        for task in tasks:
            if stopping.wait(gap):
                return
            with self._lock:
                if task.identity not in self._tasks:
                    continue  # ended while we waited
            self.check(task)

    def check(self, task: Task) -> None:
        """Read one task's signal; a KILL stops it."""
        try:
            value = self._reporter.read_signal(task.request.urn)
        except GmsAuthError as exc:
            self._metrics.cancel_poll_failures.inc()
            self._on_auth_error(exc)
            return
        except GmsError as exc:
            self._metrics.cancel_poll_failures.inc()
            log.warning(
                "cannot read the cancel signal", request_urn=task.request.urn, error=str(exc)
            )
            return
        reason = describe_kill(value) if value else None
        if reason is not None:
            self.forget(task)
            self._on_kill(task, reason)
