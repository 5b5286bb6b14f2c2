"""Process helpers: subreaper, reaping only what is not registered, leftovers by marker."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from remote_executor.processes import (
    ChildRegistry,
    become_subreaper,
    is_subreaper,
    kill_leftovers,
    leftovers,
)
from tests.processes import alive

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="prctl and /proc are Linux's")

_PR_SET_CHILD_SUBREAPER = 36
# A child that starts a grandchild and exits; the grandchild closes its output, waits
# until it is an orphan, then exits. The child prints the grandchild's pid.
ORPHAN = """
import os, time
parent = os.getpid()
pid = os.fork()
if pid == 0:
    os.close(1); os.close(2)
    while os.getppid() == parent:
        time.sleep(0.01)
    os._exit(0)
print(pid)
"""
# The same, but the grandchild leaves the session and sleeps: a daemon.
DAEMON = """
import os, time
pid = os.fork()
if pid == 0:
    os.setsid(); os.close(1); os.close(2)
    time.sleep(300)
    os._exit(0)
print(pid)
"""


def zombie_of_mine(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] == "Z" and int(fields[1]) == os.getpid()


def python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )


@pytest.fixture
def subreaper() -> Iterator[ChildRegistry]:
    """This test process adopts orphans while the test runs; a registry of its own."""
    assert become_subreaper()
    registry = ChildRegistry()
    yield registry
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    assert prctl(_PR_SET_CHILD_SUBREAPER, 0) == 0
    registry.reap_orphans()


def test_a_subreaper_adopts_orphans_and_reaps_them(
    subreaper: ChildRegistry, wait_for: Callable[..., bool]
) -> None:
    assert is_subreaper()
    orphan = int(python(ORPHAN).stdout)
    assert wait_for(lambda: zombie_of_mine(orphan))

    assert subreaper.reap_orphans() >= 1

    assert not Path(f"/proc/{orphan}").exists()


def test_a_registered_child_keeps_its_exit_status(
    subreaper: ChildRegistry, wait_for: Callable[..., bool]
) -> None:
    # Started first, it is the first zombie the kernel shows: the orphan behind it is
    # reaped all the same.
    child = subreaper.start(lambda: subprocess.Popen([sys.executable, "-c", "raise SystemExit(7)"]))
    orphan = int(python(ORPHAN).stdout)
    assert wait_for(lambda: zombie_of_mine(child.pid) and zombie_of_mine(orphan))

    subreaper.reap_orphans()

    assert not Path(f"/proc/{orphan}").exists()
    assert zombie_of_mine(child.pid)
    _, status, _ = os.wait4(child.pid, 0)
    subreaper.forget(child.pid)
    assert os.waitstatus_to_exitcode(status) == 7


def test_a_fast_exiting_registered_child_is_not_stolen_by_a_running_reaper(
    subreaper: ChildRegistry,
) -> None:
    done = threading.Event()

    def reap() -> None:
        while not done.is_set():
            subreaper.reap_orphans()

    reaper = threading.Thread(target=reap, daemon=True)
    reaper.start()
    try:
        codes = []
        for _ in range(20):
            child = subreaper.start(lambda: subprocess.Popen(["/bin/sh", "-c", "exit 3"]))
            _, status, _ = os.wait4(child.pid, 0)
            subreaper.forget(child.pid)
            codes.append(os.waitstatus_to_exitcode(status))
    finally:
        done.set()
        reaper.join(timeout=10)

    assert codes == [3] * 20


def test_kill_leftovers_kills_by_marker_and_reaps_what_it_adopted(
    subreaper: ChildRegistry,
) -> None:
    # The task's child exits; its daemon left the session and is found by the marker.
    task = subprocess.Popen(
        [sys.executable, "-c", DAEMON],
        env={"PATH": os.environ.get("PATH", ""), "EXECUTOR_TASK_ID": "task-9"},
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    daemon = int(task.communicate(timeout=60)[0])
    assert alive(daemon)
    assert leftovers("task-9", pgid=task.pid) == [daemon]

    assert kill_leftovers("task-9", pgid=task.pid) == 1

    assert not Path(f"/proc/{daemon}").exists()  # killed, and reaped: it was ours
    assert leftovers("task-9") == []


def test_leftovers_match_the_whole_marker() -> None:
    path = os.environ.get("PATH", "")
    sleepers = {
        task: subprocess.Popen(
            ["sleep", "300"], env={"PATH": path, "EXECUTOR_TASK_ID": task}, start_new_session=True
        )
        for task in ("task-1", "task-10", "xtask-1")
    }
    try:
        assert leftovers("task-1") == [sleepers["task-1"].pid]
        assert leftovers(None, pgid=sleepers["task-10"].pid) == [sleepers["task-10"].pid]
    finally:
        for sleeper in sleepers.values():
            sleeper.send_signal(signal.SIGKILL)
            sleeper.wait()


def test_make_undumpable_hides_the_worker_but_not_its_children() -> None:
    done = python(
        """
        import subprocess, sys
        from remote_executor.processes import is_dumpable, make_undumpable
        print(make_undumpable(), is_dumpable())
        child = "from remote_executor.processes import is_dumpable; print(is_dumpable())"
        print(subprocess.run([sys.executable, "-c", child], capture_output=True, text=True).stdout)
        """
    )

    assert done.stdout.split() == ["True", "False", "True"]
