"""SIGTERM and SIGINT: the handler only records; a thread of its own does the stopping.

A Python signal handler runs in the main thread between two bytecodes, possibly while
that thread holds the logging lock or the worker's: a handler that logged or took a
lock could deadlock the drain. So the handler counts the signal and writes one byte
to a pipe; the ``signals`` thread reads it and calls ``stop`` (the first signal
drains, a second one forces).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType

StopCallback = Callable[[bool], None]


class StopSignals:
    """Turns SIGTERM/SIGINT into calls of ``stop(force)`` from a thread."""

    def __init__(self, stop: StopCallback) -> None:
        self._stop = stop
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)
        self._thread = threading.Thread(target=self._loop, name="signals", daemon=True)

    def install(self) -> StopSignals:
        """Handle SIGTERM and SIGINT from now on (call from the main thread)."""
        self._thread.start()
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        # Only async-signal-safe work here: one write that cannot block.
        with contextlib.suppress(OSError):  # a full pipe: enough signals are pending
            os.write(self._write, bytes([signum & 0xFF]))

    def _loop(self) -> None:
        handled = 0
        while True:
            try:
                data = os.read(self._read, 64)
            except OSError:
                return
            if not data:
                return
            for _ in data:
                handled += 1
                self._stop(handled > 1)
