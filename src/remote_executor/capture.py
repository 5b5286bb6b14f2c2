"""Capture of a child's output: read in large chunks, cut where no secret straddles, and
kept as a bounded tail.

A chunk has fixed costs (a read, a write, a look for secrets), so a child that
writes fast must be read in large chunks: the pipe's buffer is widened (Linux) so
that one read takes up to a megabyte, the bytes are read into one reused buffer,
and the tail keeps chunks whole rather than split into lines.
"""

from __future__ import annotations

import codecs
import collections
import contextlib
import fcntl
import os
import sys
import threading
from collections.abc import Callable

# One read of the child's output at most: the pipe's buffer, widened to this where it
# can be (Linux's pipe-max-size is 1 MiB by default; its default buffer is 64 KiB).
READ_BYTES = 1024 * 1024


def widen_pipe(descriptor: int) -> None:
    """Let the pipe hold ``READ_BYTES``, so that a fast child is read in large chunks.

    Where it cannot be (not Linux, a lower pipe-max-size, the user's pipe quota
    spent), the pipe keeps its size: capture is only slower.
    """
    if sys.platform == "linux":
        with contextlib.suppress(OSError):
            fcntl.fcntl(descriptor, fcntl.F_SETPIPE_SZ, READ_BYTES)


class PendingOutput:
    """Output read from the child and not yet emitted, in one buffer reused by every read.

    Reading into a fresh megabyte each time, then copying it behind the unfinished line
    held from the read before, cost a quarter of the capture's time: the allocator hands
    blocks that large back to the kernel when they are freed, and every page of the
    next one faults.
    """

    def __init__(self, descriptor: int) -> None:
        self._descriptor = descriptor
        self._buffer = bytearray(READ_BYTES)
        self._held = 0

    def fill(self) -> bool:
        """Read what the child wrote behind the held bytes; False at the end of its output."""
        if self._held == len(self._buffer):
            # What a safe cut held back fills it: a secret's form nearly as long as it.
            self._buffer.extend(bytes(READ_BYTES))
        with memoryview(self._buffer) as free:
            count = os.readv(self._descriptor, [free[self._held :]])
        self._held += count
        return count > 0

    def take(self, safe_cut: Callable[[str], int]) -> str:
        """The text up to the last newline; without one, up to where ``safe_cut`` says.

        The rest stays held for the next read. Cut at a newline, no character is split
        (a newline byte is never part of another character); at a safe cut, the bytes
        of a character not yet complete stay held with the text after the cut.
        """
        end = self._buffer.rfind(b"\n", 0, self._held) + 1
        if end:
            return self._decode(end)
        with memoryview(self._buffer) as held:
            text, complete = codecs.utf_8_decode(held[: self._held], "replace", False)
        cut = safe_cut(text)
        self._keep(text[cut:].encode("utf-8"), complete)
        return text[:cut]

    def take_all(self) -> str:
        """Everything held, at the end of the output."""
        return self._decode(self._held)

    def _decode(self, end: int) -> str:
        """The first ``end`` bytes as text; the rest stays held."""
        with memoryview(self._buffer) as held:
            text = str(held[:end], "utf-8", "replace")
        self._keep(b"", end)
        return text

    def _keep(self, head: bytes, start: int) -> None:
        """Hold ``head`` followed by the held bytes from ``start`` on."""
        kept = head + self._buffer[start : self._held]
        self._buffer[: len(kept)] = kept
        self._held = len(kept)


class LogTail:
    """The last ``max_chars`` characters of output, by whole lines, with a change counter.

    Appended pieces are kept whole, not split into lines: splitting a fast child's
    output costs more than reading it. The oldest piece goes once the newer ones
    hold ``max_chars`` without it, so less than ``max_chars`` and one piece are
    kept; ``text`` cuts the excess at a line start. A last line longer than the
    bound is kept whole, as far as its pieces are kept.
    """

    def __init__(self, max_chars: int) -> None:
        self._max_chars = max_chars
        self._pieces: collections.deque[str] = collections.deque()
        self._chars = 0
        self._lock = threading.Lock()
        self.version = 0

    def append(self, text: str) -> None:
        """Add output, dropping the oldest pieces beyond the bound."""
        with self._lock:
            self._pieces.append(text)
            self._chars += len(text)
            while len(self._pieces) > 1 and self._chars - len(self._pieces[0]) >= self._max_chars:
                self._chars -= len(self._pieces.popleft())
            self.version += 1

    def text(self) -> str:
        """The tail as one string."""
        with self._lock:
            kept = "".join(self._pieces)
        return kept[self._start(kept) :]

    def _start(self, kept: str) -> int:
        """Where the tail begins in ``kept``: the first line start within the bound.

        If none is, the start of the last line (or of ``kept``, if the line began in a
        dropped piece).
        """
        if len(kept) <= self._max_chars:
            return 0
        # A line starts after a newline; the one at the very end starts nothing.
        newline = kept.find("\n", len(kept) - self._max_chars - 1, len(kept) - 1)
        if newline >= 0:
            return newline + 1
        return kept.rfind("\n", 0, len(kept) - 1) + 1
