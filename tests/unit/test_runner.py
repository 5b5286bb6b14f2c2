"""ProcessRun: one subprocess in its own group, redacted capture, and how it ended."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from remote_executor.capture import READ_BYTES, LogFile, LogTail, widen_pipe
from remote_executor.errors import RunnerError
from remote_executor.processes import kill_leftovers
from remote_executor.runner import (
    ProcessRun,
    RunOutcome,
    RunSpec,
    group_has_live_members,
)
from remote_executor.secrets import MASK, Redactor
from tests.processes import alive

SECRET = "hunter2-secret-value"
ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONUNBUFFERED": "1"}
GRANDCHILD_PID = re.compile(r"grandchild (\d+)")
DAEMON_PID = re.compile(r"daemon (\d+)")
# A daemon as a source might leave one: fork, setsid, fork again; it keeps the task's
# stdout open and sleeps. The child prints its pid once it exists, then exits 0.
DAEMON = """
import os, time
read_end, write_end = os.pipe()
first = os.fork()
if first == 0:
    os.setsid()
    if os.fork() == 0:
        os.write(write_end, str(os.getpid()).encode())
        time.sleep(300)
    os._exit(0)
os.close(write_end)
os.waitpid(first, 0)
print(f"daemon {os.read(read_end, 32).decode()}", flush=True)
"""
LEFT_OUT = re.compile(
    r"~~~~ remote-executor: (\d+) bytes of output left out here \(EXECUTOR_TASK_LOG_MAX_MB\) ~~~~\n"
)
# A grandchild that ignores SIGTERM, as a badly behaved helper process might.
STUBBORN = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('stubborn ready', flush=True); time.sleep(300)"
)


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., ProcessRun]]:
    """Start ``python -c code`` in tmp_path; every group started is killed at the end."""
    runs: list[tuple[ProcessRun, str | None]] = []

    def start_code(
        code: str,
        redactor: Redactor | None = None,
        tail_chars: int = 100_000,
        output_deadline_seconds: float = 30.0,
        **spec_fields: object,
    ) -> ProcessRun:
        spec = RunSpec(
            argv=[sys.executable, "-c", textwrap.dedent(code)],
            env=dict(ENV),
            cwd=tmp_path,
            log_path=tmp_path / "ingestion.log",
            **spec_fields,
        )
        run = ProcessRun(
            spec,
            redactor or Redactor(),
            LogTail(tail_chars),
            output_deadline_seconds=output_deadline_seconds,
        )
        runs.append((run, spec.identity))
        return run

    yield start_code
    for run, identity in runs:  # leave nothing behind, whatever the test did
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.pid, signal.SIGKILL)
        kill_leftovers(identity, run.pid)


def grandchild_pid(run: ProcessRun, wait_for: Callable[..., bool]) -> int:
    assert wait_for(lambda: GRANDCHILD_PID.search(run.tail.text()))
    match = GRANDCHILD_PID.search(run.tail.text())
    assert match is not None
    return int(match.group(1))


def wait_in_thread(run: ProcessRun) -> tuple[threading.Thread, list[RunOutcome]]:
    outcomes: list[RunOutcome] = []
    thread = threading.Thread(target=lambda: outcomes.append(run.wait()), daemon=True)
    thread.start()
    return thread, outcomes


def wait_bounded(run: ProcessRun) -> RunOutcome:
    """``run.wait()``, failing the test instead of hanging it."""
    thread, outcomes = wait_in_thread(run)
    thread.join(timeout=60)
    assert outcomes, "wait() did not return: the task hangs"
    return outcomes[0]


def daemon_pid(run: ProcessRun, wait_for: Callable[..., bool]) -> int:
    assert wait_for(lambda: DAEMON_PID.search(run.tail.text()))
    match = DAEMON_PID.search(run.tail.text())
    assert match is not None
    return int(match.group(1))


def test_output_lands_in_log_and_tail_redacted(
    start: Callable[..., ProcessRun], tmp_path: Path
) -> None:
    redactor = Redactor()
    redactor.add(SECRET)
    run = start(
        f"""
        import sys
        print("connecting with password={SECRET}")
        print("error: auth failed for {SECRET}", file=sys.stderr)
        print("done")
        """,
        redactor,
    )

    outcome = run.wait()

    log = (tmp_path / "ingestion.log").read_text()
    assert outcome.succeeded
    assert f"connecting with password={MASK}\n" in log
    assert f"error: auth failed for {MASK}\n" in log
    assert log.endswith("done\n")
    assert SECRET not in log
    assert run.tail.text() == log


def test_exit_code_is_described(start: Callable[..., ProcessRun]) -> None:
    outcome = start("import sys; sys.exit(3)").wait()

    assert (outcome.exit_code, outcome.signal_number) == (3, None)
    assert not outcome.succeeded
    assert re.fullmatch(r"datahub exited with code 3 after \d+\.\d s", outcome.describe())


def test_signal_is_described_by_name(start: Callable[..., ProcessRun]) -> None:
    outcome = start("import os, signal; os.kill(os.getpid(), signal.SIGKILL)").wait()

    assert (outcome.exit_code, outcome.signal_number) == (None, 9)
    assert not outcome.succeeded
    assert re.fullmatch(
        r"datahub killed by signal SIGKILL \(9\), not by this executor: usually the kernel's "
        r"out-of-memory killer \(the container's memory limit\) after \d+\.\d s",
        outcome.describe(),
    )


def test_child_gets_only_the_given_environment_and_cwd(
    start: Callable[..., ProcessRun], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKER_ONLY_VARIABLE", "must-not-leak")
    run = start("import os; print(sorted(os.environ)); print(os.getcwd())")

    run.wait()

    names, cwd = run.tail.text().splitlines()[-2:]
    assert "WORKER_ONLY_VARIABLE" not in names
    assert Path(cwd) == tmp_path


def test_stdin_is_fed_to_the_child(tmp_path: Path) -> None:
    spec = RunSpec(
        argv=[sys.executable, "-c", "import sys; print(sys.stdin.read().upper())"],
        env=dict(ENV),
        cwd=tmp_path,
        log_path=tmp_path / "log",
        stdin=b"recipe from stdin",
    )

    run = ProcessRun(spec, Redactor(), LogTail(1_000))
    run.wait()

    assert run.tail.text() == "RECIPE FROM STDIN\n"


def test_missing_program_is_a_runner_error(tmp_path: Path) -> None:
    spec = RunSpec(["/nonexistent/datahub", "ingest"], dict(ENV), tmp_path, tmp_path / "log")

    with pytest.raises(RunnerError) as caught:
        ProcessRun(spec, Redactor(), LogTail(1_000))

    assert str(caught.value) == "cannot start /nonexistent/datahub: No such file or directory"


def test_stop_kills_the_whole_process_group(
    start: Callable[..., ProcessRun], wait_for: Callable[..., bool]
) -> None:
    run = start(
        """
        import subprocess, time
        grandchild = subprocess.Popen(["sleep", "300"])
        print(f"grandchild {grandchild.pid}", flush=True)
        time.sleep(300)
        """
    )
    pid = grandchild_pid(run, wait_for)
    assert alive(pid)

    run.stop("cancelled by test", grace_seconds=5)
    outcome = run.wait()

    assert wait_for(lambda: not alive(pid))
    assert outcome.signal_number == signal.SIGTERM
    assert outcome.stopped_because == "cancelled by test"
    assert not outcome.succeeded
    assert re.fullmatch(
        r"datahub stopped \(cancelled by test\): killed by signal SIGTERM \(15\) after \d+\.\d s",
        outcome.describe(),
    )


def test_stop_sends_sigkill_after_the_grace(
    start: Callable[..., ProcessRun], wait_for: Callable[..., bool]
) -> None:
    run = start(
        """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ignoring SIGTERM", flush=True)
        time.sleep(300)
        """
    )
    assert wait_for(lambda: "ignoring SIGTERM" in run.tail.text())

    run.stop("timeout", grace_seconds=0.5)
    outcome = run.wait()

    assert outcome.signal_number == signal.SIGKILL
    assert outcome.describe().startswith("datahub stopped (timeout): killed by signal SIGKILL (9)")


def test_stop_also_kills_a_grandchild_that_ignores_sigterm(
    start: Callable[..., ProcessRun], wait_for: Callable[..., bool]
) -> None:
    # The child dies of SIGTERM at once; its helper ignores SIGTERM. After the grace the
    # whole group must get SIGKILL (DESIGN.md: "the whole process group gets SIGTERM, then
    # SIGKILL after a grace"), not only when the direct child is still alive.
    run = start(
        f"""
        import subprocess, sys, time
        grandchild = subprocess.Popen([sys.executable, "-c", {STUBBORN!r}])
        print(f"grandchild {{grandchild.pid}}", flush=True)
        time.sleep(300)
        """
    )
    pid = grandchild_pid(run, wait_for)
    assert wait_for(lambda: "stubborn ready" in run.tail.text())

    run.stop("cancelled by test", grace_seconds=0.5)

    assert wait_for(lambda: not alive(pid), timeout_seconds=3), (
        "a grandchild that ignores SIGTERM survived stop(): SIGKILL is never sent to the group"
    )


def test_wait_returns_when_the_child_exits_even_if_a_grandchild_lingers(
    start: Callable[..., ProcessRun], wait_for: Callable[..., bool]
) -> None:
    # The child exits at once, leaving a background process that inherited its stdout.
    run = start(
        """
        import subprocess
        grandchild = subprocess.Popen(["sleep", "300"])
        print(f"grandchild {grandchild.pid}", flush=True)
        """
    )
    pid = grandchild_pid(run, wait_for)

    thread, outcomes = wait_in_thread(run)

    thread.join(timeout=3)
    assert outcomes, (
        "wait() still blocks after the child exited: the reader waits for EOF on a pipe the "
        "leftover grandchild holds open, so the task would hang for the grandchild's lifetime"
    )
    assert outcomes[0].exit_code == 0
    assert wait_for(lambda: not alive(pid), timeout_seconds=5)


def test_a_secret_across_the_line_length_cap_is_still_masked(
    start: Callable[..., ProcessRun], tmp_path: Path
) -> None:
    # One long line: the reader reads it in READ_BYTES pieces, and the secret
    # straddles the boundary between the first and the second piece.
    redactor = Redactor()
    redactor.add(SECRET)
    run = start(
        f"""
        import sys
        sys.stdout.write("x" * ({READ_BYTES} - 4) + "{SECRET}" + " end\\n")
        """,
        redactor,
    )

    run.wait()

    log = (tmp_path / "ingestion.log").read_text()
    assert len(log) > READ_BYTES
    assert SECRET not in log
    assert SECRET not in run.tail.text()


def test_a_secret_split_between_two_full_reads_is_masked(
    start: Callable[..., ProcessRun], tmp_path: Path
) -> None:
    # The first write fills a whole read and ends inside the secret; the rest of the
    # secret comes 0.2 s later, in a read of its own.
    redactor = Redactor()
    redactor.add(SECRET)
    run = start(
        f"""
        import sys, time
        sys.stdout.write("x" * ({READ_BYTES} - 4) + "{SECRET[:10]}"); sys.stdout.flush()
        time.sleep(0.2)
        sys.stdout.write("{SECRET[10:]} end\\n")
        """,
        redactor,
    )

    run.wait()

    expected = "x" * (READ_BYTES - 4) + f"{MASK} end\n"
    assert (tmp_path / "ingestion.log").read_text() == expected
    assert expected.endswith(run.tail.text())


def test_the_log_is_complete_byte_for_byte(
    start: Callable[..., ProcessRun], tmp_path: Path
) -> None:
    # Several reads of lines with characters of 2, 3 and 4 bytes, and a line longer than a
    # read, written in pieces of an odd size: characters and lines are split between
    # writes, and between reads. The secret is not in it, but the long line is cut where
    # no secret could straddle the cut, and what follows the cut waits for the next read.
    redactor = Redactor()
    redactor.add(SECRET)
    lines = [f"{n:06d} café 漢字 🙂 {'.' * (n % 300)}\n" for n in range(12_000)]
    lines.insert(6_000, "é" * READ_BYTES + "\n")
    output = "".join(lines).encode()
    (tmp_path / "output").write_bytes(output)
    tail_chars = 100_000
    run = start(
        """
        import sys
        output = open("output", "rb").read()
        for at in range(0, len(output), 65_537):
            sys.stdout.buffer.write(output[at : at + 65_537])
        """,
        redactor,
        tail_chars=tail_chars,
    )

    run.wait()

    assert (tmp_path / "ingestion.log").read_bytes() == output
    tail = run.tail.text()
    kept, size = 0, 0
    while size + len(lines[-kept - 1]) <= tail_chars:
        kept, size = kept + 1, size + len(lines[-kept - 1])
    assert tail == "".join(lines[-kept:])  # the longest suffix of whole lines within the bound


def test_a_character_split_between_two_reads_is_decoded_whole(
    start: Callable[..., ProcessRun], tmp_path: Path
) -> None:
    # The two bytes of "é" arrive in two reads 0.2 s apart.
    run = start(
        """
        import sys, time
        out = sys.stdout.buffer
        out.write(b"caf\\xc3"); out.flush()
        time.sleep(0.2)
        out.write(b"\\xa9 ok\\n"); out.flush()
        """
    )

    run.wait()

    assert (tmp_path / "ingestion.log").read_text(encoding="utf-8") == "café ok\n"
    assert run.tail.text() == "café ok\n"


def test_log_tail_keeps_the_last_lines_within_its_bound() -> None:
    tail = LogTail(max_chars=100)
    lines = [f"line {n:03d} {'.' * 10}\n" for n in range(20)]  # 20 characters each

    for line in lines:
        tail.append(line)

    assert tail.text() == "".join(lines[-5:])
    assert tail.version == 20


def test_log_tail_keeps_one_line_longer_than_its_bound() -> None:
    tail = LogTail(max_chars=10)
    tail.append("short\n")

    tail.append("a line much longer than ten characters\n")

    assert tail.text() == "a line much longer than ten characters\n"


def test_log_tail_drops_whole_pieces_and_starts_at_a_line() -> None:
    tail = LogTail(max_chars=100)
    pieces = ["".join(f"piece {p} {n}\n" for n in range(10)) for p in range(3)]  # 10 lines of 10

    for piece in pieces:
        tail.append(piece)

    lines = "".join(pieces).splitlines(keepends=True)
    assert tail.text() == "".join(lines[-10:])
    assert tail.version == 3

    tail.append("one more\n")

    assert tail.text() == "".join(lines[-9:]) + "one more\n"


def test_log_tail_starts_after_a_line_cut_from_a_kept_piece() -> None:
    tail = LogTail(max_chars=15)

    tail.append("first line\nsecond line\n")

    assert tail.text() == "second line\n"


@pytest.mark.skipif(sys.platform != "linux", reason="F_SETPIPE_SZ is Linux's")
def test_the_output_pipe_holds_a_whole_read() -> None:
    with open("/proc/sys/fs/pipe-max-size") as limit:
        if int(limit.read()) < READ_BYTES:
            pytest.skip("pipe-max-size is below READ_BYTES")
    read_end, write_end = os.pipe()
    try:
        widen_pipe(read_end)

        assert fcntl.fcntl(read_end, fcntl.F_GETPIPE_SZ) == READ_BYTES
    finally:
        os.close(read_end)
        os.close(write_end)


def test_run_outcome_of_a_task_that_never_started() -> None:
    outcome = RunOutcome(None, None, 0.0, "cancelled")

    assert not outcome.succeeded


def test_a_group_of_only_zombies_counts_as_gone() -> None:
    # A child that exited but was not reaped yet is a zombie: stop() must not wait out
    # its grace for it.
    child = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and group_has_live_members(child.pid):
        time.sleep(0.02)

    assert not group_has_live_members(child.pid)
    child.wait()


def test_child_dies_with_the_worker(tmp_path: Path, wait_for: Callable[..., bool]) -> None:
    # A worker process that starts a long child and prints the child's pid; then kill -9 it.
    worker_code = textwrap.dedent(
        f"""
        import sys, threading
        from pathlib import Path
        from remote_executor.capture import LogTail
        from remote_executor.runner import ProcessRun, RunSpec
        from remote_executor.secrets import Redactor

        def start():
            spec = RunSpec([sys.executable, "-c", "import time; time.sleep(300)"], {{}},
                           Path({str(tmp_path)!r}), Path({str(tmp_path / "log")!r}))
            run = ProcessRun(spec, Redactor(), LogTail(1000))
            print(run.pid, flush=True)
            run.wait()

        threading.Thread(target=start).start()
        """
    )
    worker = subprocess.Popen([sys.executable, "-c", worker_code], stdout=subprocess.PIPE)
    assert worker.stdout is not None
    child = int(worker.stdout.readline())
    assert group_has_live_members(child)

    worker.kill()
    worker.wait()

    assert wait_for(lambda: not group_has_live_members(child), timeout_seconds=10)


def test_the_child_carries_the_task_identity_and_nothing_overrides_it(
    start: Callable[..., ProcessRun],
) -> None:
    spec = RunSpec(["x"], {"EXECUTOR_TASK_ID": "forged", "A": "1"}, Path(), Path(), identity="t-1")
    assert spec.child_environment() == {"EXECUTOR_TASK_ID": "t-1", "A": "1"}
    assert RunSpec(["x"], {"A": "1"}, Path(), Path()).child_environment() == {"A": "1"}

    run = start("import os; print(os.environ.get('EXECUTOR_TASK_ID'))", identity="t-1")
    run.wait()

    assert run.tail.text() == "t-1\n"


def test_a_daemon_left_behind_is_killed_and_wait_returns(
    start: Callable[..., ProcessRun], wait_for: Callable[..., bool]
) -> None:
    # It left the task's session; only the identity in its environment finds it.
    run = start(DAEMON, identity="urn:li:task-1/attempt-1")
    pid = daemon_pid(run, wait_for)
    assert alive(pid)

    outcome = wait_bounded(run)

    assert not alive(pid)
    assert (outcome.exit_code, outcome.leftovers_killed, outcome.output_abandoned) == (0, 1, False)
    assert outcome.succeeded
    assert re.fullmatch(
        r"datahub exited with code 0 after \d+\.\d s; killed 1 process left behind by the task",
        outcome.describe(),
    )


def test_a_daemon_that_scrubbed_its_environment_is_found_by_its_session(
    start: Callable[..., ProcessRun], wait_for: Callable[..., bool]
) -> None:
    # Its own process group, an empty environment, but still the task's session. The
    # pipe closes at exec: the child prints the pid once the environment is gone.
    run = start(
        """
        import os, sys
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.setpgid(0, 0)
            os.execve(sys.executable, [sys.executable, "-c", "import time; time.sleep(300)"], {})
        os.close(write_end)
        os.read(read_end, 1)
        print(f"daemon {pid}", flush=True)
        """,
        identity="task-2",
    )
    pid = daemon_pid(run, wait_for)
    assert b"EXECUTOR_TASK_ID" not in Path(f"/proc/{pid}/environ").read_bytes()
    assert os.getpgid(pid) != run.pid

    outcome = wait_bounded(run)

    assert not alive(pid)
    assert outcome.leftovers_killed == 1


def test_processes_left_in_the_group_are_counted(
    start: Callable[..., ProcessRun], wait_for: Callable[..., bool]
) -> None:
    run = start(
        """
        import subprocess
        for _ in range(2):
            print(f"grandchild {subprocess.Popen(['sleep', '300']).pid}", flush=True)
        """
    )
    assert wait_for(lambda: len(GRANDCHILD_PID.findall(run.tail.text())) == 2)
    pids = [int(pid) for pid in GRANDCHILD_PID.findall(run.tail.text())]

    outcome = wait_bounded(run)

    assert not any(alive(pid) for pid in pids)
    assert outcome.leftovers_killed == 2
    assert outcome.describe().endswith("; killed 2 processes left behind by the task")


def test_output_held_open_by_a_process_that_cannot_be_found_is_abandoned(
    start: Callable[..., ProcessRun], wait_for: Callable[..., bool], tmp_path: Path
) -> None:
    # Without an identity, a daemon outside the session cannot be found: wait() stops
    # reading after the deadline, and what comes later is not written.
    run = start(DAEMON, output_deadline_seconds=0.5)
    pid = daemon_pid(run, wait_for)
    try:
        outcome = wait_bounded(run)

        assert alive(pid)
        assert (outcome.exit_code, outcome.leftovers_killed, outcome.output_abandoned) == (
            0,
            0,
            True,
        )
        assert re.fullmatch(
            r"datahub exited with code 0 after \d+\.\d s; "
            r"output still open after the task ended was not read",
            outcome.describe(),
        )
        with open(f"/proc/{pid}/fd/1", "w") as pipe:  # the daemon's end of the task's pipe
            pipe.write("late line\n")
    finally:
        os.kill(pid, signal.SIGKILL)
    reader = run._reader  # ends at the pipe's end, now that the daemon is gone
    assert wait_for(lambda: not reader.is_alive())
    assert "late line" not in (tmp_path / "ingestion.log").read_text()
    assert "late line" not in run.tail.text()


def test_a_capped_log_keeps_its_head_and_tail_and_says_how_much_it_left_out(
    start: Callable[..., ProcessRun], wait_for: Callable[..., bool], tmp_path: Path
) -> None:
    # 5 MB in 100-byte lines against a cap of 1 MiB; in the middle, the child waits for
    # the test to look at the files.
    cap = 1024 * 1024
    lines = [f"line {n:07d} {'.' * 86}\n" for n in range(50_000)]
    lines.insert(40_000, "paused\n")
    output = "".join(lines)
    run = start(
        """
        import os, sys, time
        line = lambda n: f"line {n:07d} {'.' * 86}\\n"
        sys.stdout.write("".join(line(n) for n in range(40_000)))
        print("paused", flush=True)
        while not os.path.exists("go"):
            time.sleep(0.01)
        sys.stdout.write("".join(line(n) for n in range(40_000, 50_000)))
        """,
        log_max_bytes=cap,
    )
    log_path = tmp_path / "ingestion.log"
    assert wait_for(lambda: "paused" in run.tail.text())
    assert log_path.stat().st_size <= cap // 2  # while it runs, the log holds its head
    for extra in ("ingestion.log.tail", "ingestion.log.tail.prev"):
        assert (tmp_path / extra).stat().st_size <= cap // 2 + READ_BYTES
    (tmp_path / "go").touch()

    run.wait()

    log = log_path.read_text()
    match = LEFT_OUT.search(log)
    assert match is not None
    head, tail = log[: match.start()], log[match.end() :]
    assert output.startswith(head) and head.endswith("\n")
    assert output.endswith(tail) and output[-len(tail) - 1] == "\n"
    assert cap // 2 - 100 < len(head) <= cap // 2
    assert cap // 2 - 100 < len(tail) <= cap // 2
    assert tail.endswith(lines[-1])
    assert int(match.group(1)) == len(output) - len(head) - len(tail)
    assert len(log) <= cap + len(match.group(0))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["go", "ingestion.log"]
    assert run.tail.text().endswith(lines[-1])  # the report's tail is not capped by it


def test_a_capped_log_that_fits_is_the_whole_output(
    start: Callable[..., ProcessRun], tmp_path: Path
) -> None:
    run = start("print('\\n'.join(str(n) for n in range(1000)))", log_max_bytes=4096)

    run.wait()

    assert (tmp_path / "ingestion.log").read_text() == "".join(f"{n}\n" for n in range(1000))


def test_log_file_rotates_its_tail_and_keeps_the_last_lines(tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_bytes(b"earlier\n")  # counts toward the head
    log = LogFile(path, max_bytes=100)
    lines = [f"{n:09d}\n".encode() for n in range(50)]  # 10 bytes each

    for line in lines:
        log.write(line)
    log.close()
    log.write(b"after close\n")

    head = b"earlier\n" + b"".join(lines[:4])  # 8 + 40 bytes of the 50 for the head
    tail = b"".join(lines[-5:])  # the last 50 bytes
    assert path.read_bytes() == (
        head + b"~~~~ remote-executor: 410 bytes of output left out here (EXECUTOR_TASK_LOG_MAX_MB)"
        b" ~~~~\n" + tail
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log"]


def test_log_file_puts_the_marker_on_a_line_of_its_own(tmp_path: Path) -> None:
    path = tmp_path / "log"
    log = LogFile(path, max_bytes=20)

    log.write(b"abc")  # a piece cut inside a line: the head does not end with a newline
    log.write(b"0123456789abcdefghijklmnopqrstuvwxyz")  # no newline within the head's room
    log.write(b"\nlast\n")
    log.close()

    assert path.read_bytes() == (
        b"abc\n"
        b"~~~~ remote-executor: 37 bytes of output left out here (EXECUTOR_TASK_LOG_MAX_MB) ~~~~\n"
        b"last\n"
    )
