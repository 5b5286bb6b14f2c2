"""Capture of a child's output: read in large chunks, cut where no secret straddles,
written to the log file (capped, if asked) and kept as a bounded tail.

A chunk has fixed costs (a read, a write, a look for secrets), so a child that
writes fast must be read in large chunks: the pipe's buffer is widened (Linux) so
that one read takes up to a megabyte, the bytes are read into one reused buffer,
and the tail keeps chunks whole rather than split into lines.

A capped log keeps its head and its tail, half the cap each (``LogFile``). Once
the head is full, output goes to ``<log>.tail``; when that holds half the cap it
becomes ``<log>.tail.prev`` (replacing the one before) and a new ``<log>.tail``
begins. At the end the log gets a marker line with the count of bytes left out,
then the last half-cap of the tail files from a line start, and the tail files
go. While the task runs the log holds only its head; on disk the three files take
at most 1.5 times the cap and two chunks. Memory stays at one chunk and one copy
block.
"""

from __future__ import annotations

import codecs
import collections
import contextlib
import fcntl
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

# One read of the child's output at most: the pipe's buffer, widened to this where it
# can be (Linux's pipe-max-size is 1 MiB by default; its default buffer is 64 KiB).
READ_BYTES = 1024 * 1024
COPY_BYTES = 64 * 1024
LEFT_OUT_MARKER = (
    "~~~~ remote-executor: {count} bytes of output left out here (EXECUTOR_TASK_LOG_MAX_MB) ~~~~"
)


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


class LogFile:
    """The full log on disk, or with ``max_bytes`` its head and tail (see the module).

    Written by one thread at a time; ``close`` finishes it, and what comes after is
    dropped. Output already in the file counts toward the head.
    """

    def __init__(self, path: Path, max_bytes: int | None = None) -> None:
        self._path = path
        self._head: BinaryIO = open(path, "ab")  # noqa: SIM115 (closed by close())
        self._capped = max_bytes is not None
        written = os.fstat(self._head.fileno()).st_size
        self._head_room = max(0, max_bytes // 2 - written) if max_bytes is not None else 0
        self._tail_bytes = max_bytes - max_bytes // 2 if max_bytes is not None else 0
        self._tail: BinaryIO | None = None
        self._tail_size = 0  # of the current tail file
        self._tail_total = 0  # everything sent to the tail files
        self._head_ends_line = True
        self._closed = False
        if self._capped:  # a run before this one's, in the same place, must not be its tail
            self._remove_tail_files()

    @property
    def closed(self) -> bool:
        """Finished: later writes are dropped."""
        return self._closed

    def write(self, data: bytes) -> None:
        """Append ``data``: to the head while it has room (cut at a newline), else to the tail."""
        if self._closed or not data:
            return
        if not self._capped or (self._tail is None and len(data) <= self._head_room):
            self._to_head(data)
            return
        if self._tail is None:
            cut = data.rfind(b"\n", 0, self._head_room) + 1
            self._to_head(data[:cut])
            self._tail = open(self._tail_path(""), "wb")  # noqa: SIM115
            data = data[cut:]
        if self._tail_size >= self._tail_bytes:
            self._rotate()
        self._tail.write(data)
        self._tail.flush()
        self._tail_size += len(data)
        self._tail_total += len(data)

    def _to_head(self, data: bytes) -> None:
        if not data:
            return
        self._head.write(data)
        # Flushed per piece: a piece is up to a megabyte when the child writes fast, and
        # when it writes slowly the file should show its latest lines.
        self._head.flush()
        self._head_room -= len(data)
        self._head_ends_line = data.endswith(b"\n")

    def _tail_path(self, suffix: str) -> Path:
        return self._path.with_name(f"{self._path.name}.tail{suffix}")

    def _rotate(self) -> None:
        assert self._tail is not None
        self._tail.close()
        os.replace(self._tail_path(""), self._tail_path(".prev"))
        self._tail = open(self._tail_path(""), "wb")  # noqa: SIM115
        self._tail_size = 0

    def close(self) -> None:
        """Finish the log: head, marker and tail, if the tail files were used."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._tail is not None:
                self._tail.close()
                self._append_tail()
        finally:
            self._head.close()
            self._remove_tail_files()

    def _remove_tail_files(self) -> None:
        for suffix in ("", ".prev"):
            self._tail_path(suffix).unlink(missing_ok=True)

    def _append_tail(self) -> None:
        files = [self._tail_path(".prev"), self._tail_path("")]
        kept = sum(file.stat().st_size for file in files if file.exists())
        start = 0
        if self._tail_total > self._tail_bytes:
            start = kept - self._tail_bytes
            if start > 0:
                start += _to_line_start(_blocks(files, start - 1))
        left_out = self._tail_total - (kept - start)
        if left_out:
            lead = b"" if self._head_ends_line else b"\n"
            self._head.write(lead + LEFT_OUT_MARKER.format(count=left_out).encode() + b"\n")
        for block in _blocks(files, start):
            self._head.write(block)
        self._head.flush()


def _blocks(files: list[Path], offset: int) -> Iterator[bytes]:
    """The files' bytes, as if they were one, from ``offset`` on."""
    for file in files:
        if not file.exists():
            continue
        size = file.stat().st_size
        if offset >= size:
            offset -= size
            continue
        with file.open("rb") as source:
            source.seek(offset)
            offset = 0
            while block := source.read(COPY_BYTES):
                yield block


def _to_line_start(blocks: Iterator[bytes]) -> int:
    """How far past the first byte of ``blocks`` the first line starts that begins after it;
    0 if none does (one line longer than the tail: its end is kept)."""
    skipped = 0
    for block in blocks:
        newline = block.find(b"\n")
        if newline >= 0:
            return skipped + newline
        skipped += len(block)
    return 0
