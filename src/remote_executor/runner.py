"""One ingestion subprocess: its own session, limits, bounded capture, and how it ended.

The child runs in a new session (process group) so that stopping it stops
everything it started. It is killed if the worker dies (PR_SET_PDEATHSIG) and
its data segment is capped by RLIMIT_DATA when a memory limit is set. Its
output (stderr merged into stdout) is read in chunks of whole lines, redacted,
appended to the log file (capped to its head and tail if asked) and kept as a
bounded tail in memory for the reports. A chunk ends at a newline, or, inside a
line longer than a read, where no secret can straddle the cut; so a secret value
is never split between two redactions, and nothing reaches the log unredacted.

The task is over when the child exits: what it left behind (its group, its session,
every process carrying its ``EXECUTOR_TASK_ID``) is killed, and its output is read
until the pipe ends, or for ``OUTPUT_DEADLINE_SECONDS`` more if a process that could
not be found still holds it open. Then the reader is abandoned: it is a daemon
thread, it writes nothing more, and it ends when the pipe does.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from remote_executor.capture import LogFile, LogTail, PendingOutput, widen_pipe
from remote_executor.errors import RunnerError

# group_has_live_members is also imported from here, where it was before processes.py.
from remote_executor.processes import (
    CHILDREN,
    TASK_ID_VARIABLE,
    ChildRegistry,
    child_setup,
    group_has_live_members,
    kill_leftovers,
)
from remote_executor.secrets import Redactor

# What a child that ran out of memory prints: Python, C, C++ and the JVM's words for it.
OOM_MARKERS = ("MemoryError", "Cannot allocate memory", "std::bad_alloc", "OutOfMemoryError")
OOM_WINDOW_CHARS = 64 * 1024
# How long the output is read after the child exited and its leftovers were killed.
OUTPUT_DEADLINE_SECONDS = 5.0


@dataclass(frozen=True)
class RunSpec:
    """Everything needed to start the child."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    log_path: Path
    stdin: bytes | None = None
    memory_limit_mb: int | None = None
    # Set in the child's environment as EXECUTOR_TASK_ID: how its descendants are found.
    identity: str | None = None
    # The log file keeps its first and last half of this; None keeps everything.
    log_max_bytes: int | None = None

    def child_environment(self) -> dict[str, str]:
        """``env``, with the task's marker last so that nothing overrides it."""
        if self.identity is None:
            return dict(self.env)
        return {**self.env, TASK_ID_VARIABLE: self.identity}


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
    leftovers_killed: int = 0
    output_abandoned: bool = False

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
        return f"datahub {how} after {self.duration_seconds:.1f} s{self._aftermath()}"

    def _aftermath(self) -> str:
        """What had to be done after the child exited, if anything."""
        text = ""
        if self.leftovers_killed:
            noun = "process" if self.leftovers_killed == 1 else "processes"
            text += f"; killed {self.leftovers_killed} {noun} left behind by the task"
        if self.output_abandoned:
            text += "; output still open after the task ended was not read"
        return text

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


class ProcessRun:
    """A started child; ``wait`` for it, or ``stop`` it (TERM to the group, then KILL).

    The child is registered with ``children`` while it runs, so that a reaper of
    orphans (``ChildRegistry.reap_orphans``) leaves it to ``wait``.
    """

    def __init__(
        self,
        spec: RunSpec,
        redactor: Redactor,
        tail: LogTail,
        *,
        children: ChildRegistry = CHILDREN,
        output_deadline_seconds: float = OUTPUT_DEADLINE_SECONDS,
    ) -> None:
        self._spec = spec
        self._redactor = redactor
        self.tail = tail
        self._children = children
        self._output_deadline_seconds = output_deadline_seconds
        self._stopped_because: str | None = None
        self._exited = threading.Event()
        # Held while a piece is written, and by wait() to close the log: an abandoned
        # reader finds it closed and writes nothing more.
        self._output_lock = threading.Lock()
        self._started = time.monotonic()
        try:
            self._log = LogFile(spec.log_path, spec.log_max_bytes)
        except OSError as exc:
            raise RunnerError(
                f"cannot open the log {spec.log_path}: {exc.strerror or exc}"
            ) from exc
        try:
            self._proc = children.start(self._popen)
        except OSError as exc:
            self._log.close()
            raise RunnerError(f"cannot start {spec.argv[0]}: {exc.strerror or exc}") from exc
        self._reader = threading.Thread(target=self._read, name="log-reader", daemon=True)
        self._reader.start()
        if spec.stdin is not None:
            # In its own thread: a child that prints before it reads must not deadlock us.
            threading.Thread(
                target=self._feed_stdin, args=(spec.stdin,), name="stdin-feeder", daemon=True
            ).start()

    def _popen(self) -> subprocess.Popen[bytes]:
        spec = self._spec
        return subprocess.Popen(
            spec.argv,
            cwd=spec.cwd,
            env=spec.child_environment(),
            stdin=subprocess.PIPE if spec.stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            preexec_fn=child_setup(spec.memory_limit_mb),  # noqa: PLW1509
        )

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
        with stdout:
            widen_pipe(stdout.fileno())
            pending = PendingOutput(stdout.fileno())
            while pending.fill():
                self._emit(pending.take(self._redactor.safe_cut))
            self._emit(pending.take_all())

    def _emit(self, text: str) -> None:
        if not text:
            return
        redacted = self._redactor.redact(text)
        with self._output_lock:
            if self._log.closed:  # abandoned by wait()
                return
            self._log.write(redacted.encode("utf-8"))
            self.tail.append(redacted)

    def wait(self) -> RunOutcome:
        """Block until the child and its output are done; only this method reaps the child."""
        pid = self._proc.pid
        # Exited, not reaped yet: while it is a zombie its pid, which is its group's and
        # its session's id, cannot be given to another process.
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        self._exited.set()
        # The task is over when datahub exits: what it left behind would hold the output
        # pipe open and outlive the task.
        killed = kill_leftovers(self._spec.identity, pid)
        try:
            # wait4 rather than Popen.wait: its rusage gives the child's peak memory.
            _, status, usage = os.wait4(pid, 0)
        finally:
            self._children.forget(pid)
        code = os.waitstatus_to_exitcode(status)
        self._proc.returncode = code
        self._reader.join(self._output_deadline_seconds)
        with self._output_lock:
            self._log.close()
        return RunOutcome(
            exit_code=code if code >= 0 else None,
            signal_number=-code if code < 0 else None,
            duration_seconds=time.monotonic() - self._started,
            stopped_because=self._stopped_because,
            # ru_maxrss is in KiB on Linux, in bytes on macOS.
            peak_rss_mb=usage.ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024),
            memory_limit_mb=self._spec.memory_limit_mb,
            said_out_of_memory=self._said_out_of_memory(),
            leftovers_killed=killed,
            output_abandoned=self._reader.is_alive(),
        )

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
