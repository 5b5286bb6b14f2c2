"""One ingestion subprocess: its own session, limits, bounded capture, and how it ended.

The child runs in a new session (process group) so that stopping it stops
everything it started. It is killed if the worker dies (PR_SET_PDEATHSIG) and
its data segment is capped by RLIMIT_DATA when a memory limit is set. Its
output (stderr merged into stdout) is read in chunks of whole lines, redacted,
appended to the full log file and kept as a bounded tail in memory for the
reports. A chunk ends at a newline, or, inside a line longer than a read, where
no secret can straddle the cut; so a secret value is never split between two
redactions.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from remote_executor.capture import LogTail, PendingOutput, widen_pipe
from remote_executor.errors import RunnerError
from remote_executor.secrets import Redactor

# What a child that ran out of memory prints: Python, C, C++ and the JVM's words for it.
OOM_MARKERS = ("MemoryError", "Cannot allocate memory", "std::bad_alloc", "OutOfMemoryError")
OOM_WINDOW_CHARS = 64 * 1024
_PR_SET_PDEATHSIG = 1
# Looked up before any fork: the child may only call what is already resolved.
_prctl: Any = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


@dataclass(frozen=True)
class RunSpec:
    """Everything needed to start the child."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    log_path: Path
    stdin: bytes | None = None
    memory_limit_mb: int | None = None


@dataclass(frozen=True)
class RunOutcome:
    """How the child ended."""

    exit_code: int | None
    signal_number: int | None
    duration_seconds: float
    stopped_because: str | None = None
    peak_rss_mb: float | None = None
    memory_limit_mb: int | None = None
    said_out_of_memory: bool = False

    @property
    def succeeded(self) -> bool:
        """Exited by itself with code 0."""
        return self.exit_code == 0 and self.stopped_because is None

    @property
    def out_of_memory(self) -> bool:
        """Failed, and its last words were about memory."""
        return self.said_out_of_memory and not self.succeeded and self.stopped_because is None

    def describe(self) -> str:
        """One line a user understands: exit code, or the signal by name, and memory if short."""
        if self.signal_number is not None:
            how = f"killed by signal {signal_name(self.signal_number)}"
            if self.signal_number == signal.SIGKILL and self.stopped_because is None:
                how += (
                    ", not by this executor: usually the kernel's out-of-memory killer "
                    "(the container's memory limit)"
                )
        else:
            how = f"exited with code {self.exit_code}"
        if self.stopped_because:
            how = f"stopped ({self.stopped_because}): {how}"
        if self.out_of_memory:
            how = f"out of memory ({self.memory_text()}): {how}"
        return f"datahub {how} after {self.duration_seconds:.1f} s"

    def memory_text(self) -> str:
        """``limit N MiB, peak M MiB``, as far as known."""
        limit = f"limit {self.memory_limit_mb} MiB" if self.memory_limit_mb else "no limit set"
        peak = (
            f"peak {self.peak_rss_mb:.0f} MiB" if self.peak_rss_mb is not None else "peak unknown"
        )
        return f"{limit}, {peak}"


def signal_name(number: int) -> str:
    """``SIGTERM (15)``; numbers Python does not name stay numbers."""
    try:
        return f"{signal.Signals(number).name} ({number})"
    except ValueError:
        return f"signal {number}"


def _child_setup(memory_limit_mb: int | None) -> Any:
    """What the child runs between fork and exec: die with the worker, cap its memory."""
    parent = os.getpid()
    limit = memory_limit_mb * 1024 * 1024 if memory_limit_mb else None

    def setup() -> None:
        if _prctl is not None:
            # Tied to the thread that forks: tasks are started from long-lived pool threads.
            _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != parent:  # the worker died before the line above
                os._exit(1)
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))

    return setup


def group_has_live_members(pgid: int) -> bool:
    """True while a process of the group runs; zombies (dead, not yet reaped) do not count."""
    proc = Path("/proc")
    if not proc.is_dir():  # not Linux: a zombie counts as alive, the grace is waited out
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended while we looked
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


class ProcessRun:
    """A started child; ``wait`` for it, or ``stop`` it (TERM to the group, then KILL)."""

    def __init__(self, spec: RunSpec, redactor: Redactor, tail: LogTail) -> None:
        self._spec = spec
        self._redactor = redactor
        self.tail = tail
        self._stopped_because: str | None = None
        self._exited = threading.Event()
        self._started = time.monotonic()
        try:
            self._proc = subprocess.Popen(
                spec.argv,
                cwd=spec.cwd,
                env=spec.env,
                stdin=subprocess.PIPE if spec.stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
                preexec_fn=_child_setup(spec.memory_limit_mb),  # noqa: PLW1509
            )
        except OSError as exc:
            raise RunnerError(f"cannot start {spec.argv[0]}: {exc.strerror or exc}") from exc
        self._reader = threading.Thread(target=self._read, name="log-reader", daemon=True)
        self._reader.start()
        if spec.stdin is not None:
            # In its own thread: a child that prints before it reads must not deadlock us.
            threading.Thread(
                target=self._feed_stdin, args=(spec.stdin,), name="stdin-feeder", daemon=True
            ).start()

    @property
    def pid(self) -> int:
        """The child's pid, which is also its process group id."""
        return self._proc.pid

    def _feed_stdin(self, data: bytes) -> None:
        stdin = self._proc.stdin
        assert stdin is not None
        # A child that exits before reading breaks the pipe; its exit code tells why.
        with contextlib.suppress(OSError):
            stdin.write(data)
        with contextlib.suppress(OSError):
            stdin.close()

    def _read(self) -> None:
        stdout = self._proc.stdout
        assert stdout is not None
        widen_pipe(stdout.fileno())
        pending = PendingOutput(stdout.fileno())
        with open(self._spec.log_path, "ab") as log:
            while pending.fill():
                self._emit(log, pending.take(self._redactor.safe_cut))
            self._emit(log, pending.take_all())

    def _emit(self, log: IO[bytes], text: str) -> None:
        if not text:
            return
        redacted = self._redactor.redact(text)
        log.write(redacted.encode("utf-8"))
        # Flushed per piece: a piece is up to a megabyte when the child writes fast, and
        # when it writes slowly the file should show its latest lines.
        log.flush()
        self.tail.append(redacted)

    def wait(self) -> RunOutcome:
        """Block until the child and its output are done; only this method reaps the child."""
        # wait4 rather than Popen.wait: its rusage gives the child's peak memory.
        _, status, usage = os.wait4(self._proc.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        self._proc.returncode = code
        self._exited.set()
        # The task is over when datahub exits: what it left behind in its session would
        # hold the output pipe open and outlive the task.
        self._signal_group(signal.SIGKILL)
        self._reader.join()
        outcome = RunOutcome(
            exit_code=code if code >= 0 else None,
            signal_number=-code if code < 0 else None,
            duration_seconds=time.monotonic() - self._started,
            stopped_because=self._stopped_because,
            # ru_maxrss is in KiB on Linux, in bytes on macOS.
            peak_rss_mb=usage.ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024),
            memory_limit_mb=self._spec.memory_limit_mb,
            said_out_of_memory=self._said_out_of_memory(),
        )
        return outcome

    def _said_out_of_memory(self) -> bool:
        # Read once at the end, not per line: a dying process's last words are at the end.
        last_words = self.tail.text()[-OOM_WINDOW_CHARS:]
        return any(word in last_words for word in OOM_MARKERS)

    def stop(self, reason: str, grace_seconds: float) -> None:
        """SIGTERM to the whole process group, SIGKILL if it is still there after the grace."""
        if self._stopped_because is None:
            self._stopped_because = reason
        self._signal_group(signal.SIGTERM)
        deadline = time.monotonic() + grace_seconds
        self._exited.wait(grace_seconds)
        # The child may be gone while its children ignore SIGTERM: the grace is for the group.
        while self._group_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        self._signal_group(signal.SIGKILL)

    def _group_alive(self) -> bool:
        return group_has_live_members(self._proc.pid)

    def _signal_group(self, signum: signal.Signals) -> None:
        # Already gone: ESRCH, or EPERM on macOS for a group of zombies.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, signum)
