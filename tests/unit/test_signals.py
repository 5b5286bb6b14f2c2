"""The signal handler only records; the stopping happens on the signals thread."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator

import pytest

from remote_executor.signals import StopSignals


@pytest.fixture
def restore_handlers() -> Iterator[None]:
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.mark.usefixtures("restore_handlers")
def test_first_signal_drains_second_forces_from_another_thread() -> None:
    calls: list[tuple[bool, str]] = []
    two = threading.Event()

    def stop(force: bool) -> None:
        calls.append((force, threading.current_thread().name))
        if len(calls) == 2:
            two.set()

    StopSignals(stop).install()
    os.kill(os.getpid(), signal.SIGTERM)
    os.kill(os.getpid(), signal.SIGINT)
    assert two.wait(10)
    assert calls == [(False, "signals"), (True, "signals")]
