"""Task slots: a semaphore that also says how many are free, for the metrics."""

from __future__ import annotations

import threading


class Slots:
    """``size`` slots; ``take`` one (at once, or waiting up to a timeout), ``give`` it back."""

    def __init__(self, size: int) -> None:
        self._semaphore = threading.Semaphore(size)
        self._lock = threading.Lock()
        self._size = size
        self._held = 0

    @property
    def free(self) -> int:
        """Slots not taken now."""
        with self._lock:
            return self._size - self._held

    def take(self, timeout: float | None = None) -> bool:
        """One slot, without waiting or waiting up to ``timeout``; False if none came."""
        if timeout:
            taken = self._semaphore.acquire(timeout=timeout)
        else:
            taken = self._semaphore.acquire(blocking=False)
        if taken:
            with self._lock:
                self._held += 1
        return taken

    def give(self) -> None:
        """Give one slot back."""
        with self._lock:
            self._held -= 1
        self._semaphore.release()
