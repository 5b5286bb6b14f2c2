"""Background loops that survive their own bugs, and a registry that says when one died.

Every thread that keeps the worker honest (lease keeper, cancel watcher,
heartbeats, readiness checks, the orphan reaper) runs as a ``Loop``: one
``iteration`` at a time, each in its own ``try``. An exception from one iteration
is logged and counted and the loop goes on. What escapes that (a ``BaseException``
such as ``SystemExit`` from an iteration, or a bug in this module) restarts the
loop, logged and counted, up to ``MAX_RESTARTS`` times; after that the thread
ends, and ``Loops.dead`` names it so that ``/healthz`` turns red and the
orchestrator restarts the worker.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog

log = structlog.get_logger("remote_executor.loops")

ErrorCallback = Callable[[str, BaseException], None]
MAX_RESTARTS = 3


class Loop:
    """Calls ``iteration`` every ``interval()`` seconds until ``stop``; survives its errors."""

    def __init__(
        self,
        name: str,
        iteration: Callable[[], object],
        interval: Callable[[], float] | float,
        on_error: ErrorCallback | None = None,
        on_restart: ErrorCallback | None = None,
    ) -> None:
        self.name = name
        self._iteration = iteration
        self._interval = interval if callable(interval) else (lambda: float(interval))
        self._on_error = on_error
        self.on_restart = on_restart
        self.restarts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.errors = 0
        self.died: BaseException | None = None

    @property
    def kind(self) -> str:
        """The name without what follows its first space: a metric label of few values."""
        return self.name.split(" ", 1)[0]

    @property
    def stopping(self) -> threading.Event:
        """Set by ``stop``: an iteration may wait on it instead of sleeping."""
        return self._stop

    def start(self) -> Loop:
        """Start the thread."""
        self._thread.start()
        return self

    def stop(self, join_seconds: float | None = 5.0) -> None:
        """Ask the loop to end and wait for the iteration in flight (None: without limit)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(join_seconds)

    @property
    def alive(self) -> bool:
        """Started and not dead of an escaped exception (a stopped loop counts as alive)."""
        return self.died is None

    def run_once(self) -> None:
        """One iteration, with its exception logged and counted instead of raised."""
        try:
            self._iteration()
        except Exception as exc:  # the loop must outlive any one bad round
            self.errors += 1
            log.exception("background loop iteration failed; continuing", loop=self.name)
            if self._on_error is not None:
                self._on_error(self.name, exc)

    def _run(self) -> None:
        while True:
            try:
                while not self._stop.wait(self._interval()):
                    self.run_once()
                return
            except BaseException as exc:
                if self.restarts >= MAX_RESTARTS:
                    self.died = exc
                    log.critical("background loop died", loop=self.name, error=repr(exc))
                    raise
                self.restarts += 1
                log.error(
                    "background loop restarted",
                    loop=self.name,
                    error=repr(exc),
                    restarts=self.restarts,
                )
                if self.on_restart is not None:
                    self.on_restart(self.kind, exc)


class Loops:
    """The worker's long-lived loops, for ``/healthz``."""

    def __init__(self, on_restart: ErrorCallback | None = None) -> None:
        self._loops: list[Loop] = []
        self._lock = threading.Lock()
        self._on_restart = on_restart

    def add(self, loop: Loop) -> Loop:
        """Register a loop (registering does not start it); restarts are reported here."""
        if loop.on_restart is None:
            loop.on_restart = self._on_restart
        with self._lock:
            self._loops.append(loop)
        return loop

    def remove(self, loop: Loop) -> None:
        """Forget a loop that ended on purpose (a task's heartbeat, after the task)."""
        with self._lock:
            if loop in self._loops:
                self._loops.remove(loop)

    def all(self) -> list[Loop]:
        """The loops registered, in order."""
        with self._lock:
            return list(self._loops)

    @property
    def dead(self) -> str | None:
        """``loop <name> died: <error>`` for the first dead loop, or None."""
        with self._lock:
            loops = list(self._loops)
        for loop in loops:
            if loop.died is not None:
                return f"background loop {loop.name} died: {loop.died!r}"
        return None
