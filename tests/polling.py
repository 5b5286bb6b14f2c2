"""Waiting for a condition in tests: a bound on a hang, never a measure of speed."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(
    condition: Callable[[], object], timeout_seconds: float = 20.0, interval: float = 0.02
) -> bool:
    """Poll until condition() is truthy; False if it never was within the timeout."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())
