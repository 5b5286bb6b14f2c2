"""Linux process helpers: what a task's child may not outlive, and who reaps what.

Every task child carries ``EXECUTOR_TASK_ID=<identity>`` in its environment, and
its descendants inherit it; the child's pid is also its process group and session
id. ``kill_leftovers`` kills every live process that carries the marker or sits in
that group or session. The documented limit: a process that both leaves the
session (``setsid``) and drops the marker is not found. It drops the marker by an
exec with another environment or by overwriting its environ area; for a worker
that is not root, also by a change of uid or by ``PR_SET_DUMPABLE`` 0, which make
its ``/proc/<pid>/environ`` unreadable. Such a process lives on; if it holds the
task's output open, the runner stops reading that after a deadline.

The worker makes itself a child subreaper (``become_subreaper``): orphaned
descendants of its tasks are re-parented to it instead of to init, and when they
die they are its zombies. ``CHILDREN.reap_orphans`` reaps those, and only those:
the worker's own children are registered (``CHILDREN.start``) and left to whoever
started them, because ``ProcessRun.wait`` needs its child's rusage from
``os.wait4``. The rule, in a subreaper process: start every child through
``CHILDREN.start``, and ``forget`` it once reaped. A child started with plain
``subprocess`` (``run``, ``Popen``) may be reaped by the reaper first; its
``wait`` then reports exit code 0 instead of the real one. ``executor check``
runs in a process of its own, not a subreaper, so its ``subprocess.run`` is safe.

``make_undumpable`` keeps other processes of the worker's uid from reading its
environment or tracing it. Nothing here reads ``/proc/self``, which becomes
root's then; a task's processes get the flag back at exec and stay readable.
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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

TASK_ID_VARIABLE = "EXECUTOR_TASK_ID"
# How long kill_leftovers keeps killing: a process that forks as fast as it is killed,
# or one stuck in the kernel (state D), is given up on after this.
KILL_DEADLINE_SECONDS = 2.0
_PR_SET_PDEATHSIG = 1
_PR_GET_DUMPABLE = 3
_PR_SET_DUMPABLE = 4
_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37
_GONE_STATES = ("Z", "X", "x")  # zombie (dead, not yet reaped), dead
_PROC = Path("/proc")
# Looked up before any fork: the child may only call what is already resolved.
_prctl: Any = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None

P = TypeVar("P", bound="subprocess.Popen[Any]")


def child_setup(memory_limit_mb: int | None) -> Callable[[], None]:
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


def become_subreaper() -> bool:
    """Adopt orphaned descendants (PR_SET_CHILD_SUBREAPER); False where it cannot."""
    return _prctl is not None and _prctl(_PR_SET_CHILD_SUBREAPER, 1) == 0


def is_subreaper() -> bool:
    """Whether orphaned descendants are re-parented to this process."""
    if _prctl is None:
        return False
    flag = ctypes.c_int(0)
    return _prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(flag)) == 0 and flag.value != 0


def make_undumpable() -> bool:
    """Hide this process from others of its uid: no ptrace, no /proc/<pid>/environ.

    Its /proc/<pid> files become root's, its own /proc/self included; a child gets
    the flag back at exec.
    """
    return _prctl is not None and _prctl(_PR_SET_DUMPABLE, 0) == 0


def is_dumpable() -> bool:
    """PR_GET_DUMPABLE; True where there is no such thing."""
    return _prctl is None or _prctl(_PR_GET_DUMPABLE) != 0


def _stat(pid: str | int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name, from the state on."""
    try:
        return (_PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None  # the process ended while we looked


def _processes() -> Iterator[tuple[int, list[str]]]:
    for entry in _PROC.glob("[0-9]*"):
        fields = _stat(entry.name)
        if fields is not None:
            yield int(entry.name), fields


def group_has_live_members(pgid: int) -> bool:
    """True while a process of the group runs; zombies (dead, not yet reaped) do not count."""
    if not _PROC.is_dir():  # not Linux: a zombie counts as alive, the grace is waited out
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    return any(int(f[2]) == pgid and f[0] not in _GONE_STATES for _, f in _processes())


class ChildRegistry:
    """The children that their starters reap; ``reap_orphans`` reaps every other zombie.

    One per process, as the kernel keeps one list of children per process: ``CHILDREN``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pids: set[int] = set()

    def start(self, launch: Callable[[], P]) -> P:
        """Run ``launch`` (a ``Popen``) and register its child before any reaper can look."""
        with self._lock:
            child = launch()
            self._pids.add(child.pid)
        return child

    def forget(self, pid: int) -> None:
        """The child was reaped by its starter."""
        with self._lock:
            self._pids.discard(pid)

    def reap_orphans(self) -> int:
        """Reap the zombies among this process's children that are not registered."""
        reaped = 0
        with self._lock:
            while (pid := self._peek()) is not None:
                if pid in self._pids:  # first in the kernel's line, and not ours to reap
                    return reaped + sum(self._reap(zombie) for zombie in self._zombies())
                reaped += self._reap(pid)
        return reaped

    @staticmethod
    def _peek() -> int | None:
        try:
            found = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return None
        return found.si_pid if found is not None else None

    def _zombies(self) -> list[int]:
        me = os.getpid()
        return [
            pid
            for pid, fields in _processes()
            if fields[0] == "Z" and int(fields[1]) == me and pid not in self._pids
        ]

    @staticmethod
    def _reap(pid: int) -> int:
        try:
            return int(os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG) is not None)
        except ChildProcessError:
            return 0


CHILDREN = ChildRegistry()


def _carries(pid: int, marker: bytes) -> bool:
    try:
        environ = (_PROC / str(pid) / "environ").read_bytes()
    except OSError:  # gone, or not ours to read
        return False
    return marker in b"\0" + environ + b"\0"


def _matching(identity: str | None, pgid: int | None) -> dict[int, str]:
    """Live processes of the task: pid to start time, which tells a reused pid apart."""
    marker = f"\0{TASK_ID_VARIABLE}={identity}\0".encode() if identity else None
    me = os.getpid()
    found: dict[int, str] = {}
    for pid, fields in _processes():
        if pid == me or fields[0] in _GONE_STATES:
            continue
        in_session = pgid is not None and pgid in (int(fields[2]), int(fields[3]))
        if in_session or (marker is not None and _carries(pid, marker)):
            found[pid] = fields[19]
    return found


def leftovers(identity: str | None, pgid: int | None = None) -> list[int]:
    """Pids of live processes that carry ``EXECUTOR_TASK_ID=<identity>`` or whose process
    group or session is ``pgid``."""
    return sorted(_matching(identity, pgid))


def _kill(pid: int, started: str) -> bool:
    """SIGKILL ``pid`` if it is still the process that started at ``started``."""
    handle: int | None
    try:  # a pidfd holds the process: its pid cannot be reused before the signal
        handle = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    except OSError:  # a kernel before 5.3: the pid is checked, then signalled
        handle = None
    try:
        fields = _stat(pid)
        if fields is None or fields[19] != started:
            return False
        if handle is None:
            os.kill(pid, signal.SIGKILL)
        else:
            signal.pidfd_send_signal(handle, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return False
    finally:
        if handle is not None:
            os.close(handle)
    return True


def kill_leftovers(identity: str | None, pgid: int) -> int:
    """SIGKILL what the task left behind until nothing is left (or the deadline passes);
    the number of distinct processes killed. Zombies re-parented to us are reaped."""
    if not _PROC.is_dir():  # not Linux: only the group can be found
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        return 0
    killed: set[tuple[int, str]] = set()
    deadline = time.monotonic() + KILL_DEADLINE_SECONDS
    while True:
        found = _matching(identity, pgid)
        killed.update((pid, started) for pid, started in found.items() if _kill(pid, started))
        if is_subreaper():
            CHILDREN.reap_orphans()
        if not found or time.monotonic() > deadline:
            return len(killed)
        time.sleep(0.01)
