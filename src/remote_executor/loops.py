"""Background loops that survive their own bugs, and a registry that says when one died.

Every thread that keeps the worker honest (lease keeper, cancel watcher,
progress updaters, readiness checks) runs as a ``Loop``: one ``iteration`` at a
time, each in its own ``try``. An exception from one iteration is logged and
counted and the loop goes on; only an exception that escapes the loop itself
(a bug in this module, or a ``BaseException``) ends the thread, and then
``Loops.dead`` names it so that ``/healthz`` turns red.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog

log = structlog.get_logger("remote_executor.loops")

ErrorCallback = Callable[[str, BaseException], None]


class Loop:
    """Calls ``iteration`` every ``interval()`` seconds until ``stop``; survives its errors."""

    def __init__(
        self,
        name: str,
        iteration: Callable[[], object],
        interval: Callable[[], float] | float,
        on_error: ErrorCallback | None = None,
    ) -> None:
        self.name = name
        self._iteration = iteration
        self._interval = interval if callable(interval) else (lambda: float(interval))
        self._on_error = on_error
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.errors = 0
        self.died: BaseException | None = None

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
        try:
            while not self._stop.wait(self._interval()):
                self.run_once()
        except BaseException as exc:
            self.died = exc
            log.critical("background loop died", loop=self.name, error=repr(exc))
            raise


class Loops:
    """The worker's long-lived loops, for ``/healthz``."""

    def __init__(self) -> None:
        self._loops: list[Loop] = []
        self._lock = threading.Lock()

    def add(self, loop: Loop) -> Loop:
        """Register a loop (registering does not start it)."""
        with self._lock:
            self._loops.append(loop)
        return loop

    def remove(self, loop: Loop) -> None:
        """Forget a loop that ended on purpose (a task's heartbeat, after the task)."""
        with self._lock:
            if loop in self._loops:
                self._loops.remove(loop)

    @property
    def dead(self) -> str | None:
        """``loop <name> died: <error>`` for the first dead loop, or None."""
        with self._lock:
            loops = list(self._loops)
        for loop in loops:
            if loop.died is not None:
                return f"background loop {loop.name} died: {loop.died!r}"
        return None
