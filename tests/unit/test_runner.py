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

from remote_executor.capture import READ_BYTES, LogTail, widen_pipe
from remote_executor.errors import RunnerError
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
# A grandchild that ignores SIGTERM, as a badly behaved helper process might.
STUBBORN = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('stubborn ready', flush=True); time.sleep(300)"
)


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., ProcessRun]]:
    """Start ``python -c code`` in tmp_path; every group started is killed at the end."""
    runs: list[ProcessRun] = []

    def start_code(
        code: str, redactor: Redactor | None = None, tail_chars: int = 100_000
    ) -> ProcessRun:
        spec = RunSpec(
            argv=[sys.executable, "-c", textwrap.dedent(code)],
            env=dict(ENV),
            cwd=tmp_path,
            log_path=tmp_path / "ingestion.log",
        )
        run = ProcessRun(spec, redactor or Redactor(), LogTail(tail_chars))
        runs.append(run)
        return run

    yield start_code
    for run in runs:  # leave nothing behind, whatever the test did
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.pid, signal.SIGKILL)


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
