"""Fail closed: each way a hostile recipe or a flaky network broke a promise, tried again.

Every scenario runs real ``executor run`` processes against the sandbox (moto SQS, the
GMS stand-in) with the fake CLI, and records a row of the chaos table.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from remote_executor.messages import build_message
from remote_executor.models import request_urn
from remote_executor.recipe import TOKEN_ENV
from remote_executor.sandbox import Sandbox
from tests.chaos.conftest import TOKEN
from tests.chaos.support import ChaosQueue, WorkerProcess, runs, terminal_statuses, wait_until
from tests.chaos.test_chaos import assert_none_lost_doubled_or_left
from tests.processes import alive

Workers = Callable[..., WorkerProcess]
CONTAINER_TOKEN = "container-credentials-token-7c1e"
KILL = {
    "signal": "KILL",
    "executorId": "remote",
    "createdAt": {"time": 1700000000000, "actor": "urn:li:corpuser:chaos"},
}


def report_of(sandbox: Sandbox, urn: str) -> str:
    result = sandbox.gms.last_result(urn)
    assert result is not None
    return str(result["report"])


def every_report(sandbox: Sandbox, urns: list[str]) -> str:
    return "\n".join(json.dumps(sandbox.gms.results(urn)) for urn in urns)


def endings(worker: WorkerProcess) -> list[str]:
    """The outcome of every message the worker ended, in order (its JSON log)."""
    ended = []
    for line in worker.log().splitlines():
        if '"message ended"' in line:
            ended.append(json.loads(line)["outcome"])
    return ended


def test_a_recipe_cannot_read_the_executors_credentials(
    sandbox: Sandbox, queue: ChaosQueue, workers: Workers, markers: Path
) -> None:
    marker = {"marker_dir": str(markers)}
    token_ref = queue.submit("cred-token", {**marker, "echo": "${DATAHUB_GMS_TOKEN}"})
    aws_ref = queue.submit("cred-aws", {**marker, "echo": "${AWS_CONTAINER_AUTHORIZATION_TOKEN}"})
    # A recipe with a sink of its own that takes no token does not get the token.
    snooping = yaml.safe_dump(
        {
            "source": {"type": "fake", "config": {**marker, "print_process_env": [TOKEN_ENV]}},
            "sink": {"type": "file", "config": {"filename": str(markers.parent / "out.txt")}},
        }
    )
    queue.send_request(build_message("cred-snoop", snooping, "remote"))
    snoop = request_urn("cred-snoop")
    sink = {
        "type": "datahub-rest",
        "config": {"server": sandbox.gms.url, "token": "${DATAHUB_GMS_TOKEN}"},
    }
    allowed_recipe = yaml.safe_dump(
        {
            "source": {"type": "fake", "config": {**marker, "print_process_env": [TOKEN_ENV]}},
            "sink": sink,
        }
    )
    queue.send_request(build_message("cred-sink", allowed_recipe, "remote"))
    allowed = request_urn("cred-sink")
    urns = [token_ref, aws_ref, snoop, allowed]
    started = time.monotonic()
    workers(
        AWS_CONTAINER_AUTHORIZATION_TOKEN=CONTAINER_TOKEN,
        EXECUTOR_SECRET_HANDOFF="env",
        EXECUTOR_MAX_CONCURRENT_TASKS="4",
    )
    assert wait_until(lambda: all(terminal_statuses(sandbox, u) for u in urns))

    assert report_of(sandbox, token_ref).splitlines()[2] == (
        "Failed: Recipe error: ${DATAHUB_GMS_TOKEN} names a credential of the executor; "
        f"recipes may use it only as the token of a datahub-rest sink to {sandbox.gms.url}"
    )
    assert report_of(sandbox, aws_ref).splitlines()[2] == (
        "Failed: Recipe error: ${AWS_CONTAINER_AUTHORIZATION_TOKEN} names a variable of the "
        "executor's own environment; recipes may not read it (store the value as a secret "
        "and reference that name instead)"
    )
    assert "DATAHUB_GMS_TOKEN in environment: no" in report_of(sandbox, snoop)
    assert "DATAHUB_GMS_TOKEN in environment: yes" in report_of(sandbox, allowed)
    assert sandbox.gms.last_result(allowed)["status"] == "SUCCESS"  # type: ignore[index]
    # Neither value reaches GMS in any form a user of DataHub could read.
    everything = every_report(sandbox, urns) + "".join(
        body.decode("utf-8", "replace") for body in sandbox.gms.raw_bodies
    )
    assert TOKEN not in everything
    assert CONTAINER_TOKEN not in everything
    assert set(runs(markers)) == {"cred-snoop", "cred-sink"}  # the refused two never started
    assert_none_lost_doubled_or_left(
        "recipes reading the GMS token and AWS container token",
        sandbox,
        urns,
        markers,
        time.monotonic() - started,
    )


def test_a_bad_extra_env_vars_name_fails_on_the_first_attempt(
    sandbox: Sandbox, queue: ChaosQueue, workers: Workers, markers: Path
) -> None:
    bad = queue.submit("env-bad", {"marker_dir": str(markers)}, extra_env_vars={"A=B": "1"})
    good = queue.submit("env-good", {"marker_dir": str(markers)})
    started = time.monotonic()
    worker = workers()
    assert wait_until(lambda: terminal_statuses(sandbox, bad))
    assert wait_until(lambda: terminal_statuses(sandbox, good))

    assert report_of(sandbox, bad).splitlines()[2] == (
        "Failed: Recipe error: extra_env_vars name 'A=B' is not a valid environment variable "
        "name (letters, digits and underscores, not starting with a digit)"
    )
    assert wait_until(queue.is_empty, 30)
    assert endings(worker) == ["acknowledge", "acknowledge"]  # nothing released to loop
    assert worker.alive()
    assert_none_lost_doubled_or_left(
        "extra_env_vars name with '='", sandbox, [bad, good], markers, time.monotonic() - started
    )


def test_two_copies_on_one_worker_run_once(
    sandbox: Sandbox, queue: ChaosQueue, workers: Workers, markers: Path
) -> None:
    config = {"marker_dir": str(markers), "sleep_seconds": 3}
    urn = queue.submit("dup-local", config)
    queue.submit("dup-local", config)
    started = time.monotonic()
    workers(EXECUTOR_MAX_CONCURRENT_TASKS="4", EXECUTOR_RETRY_DELAY_SECONDS="2")
    assert wait_until(queue.is_empty, 90)

    assert runs(markers) == {"dup-local": (1, 1)}
    assert_none_lost_doubled_or_left(
        "the same request twice on one worker", sandbox, [urn], markers, time.monotonic() - started
    )


def test_a_copy_received_by_a_second_worker_while_the_first_runs_is_left(
    sandbox: Sandbox, queue: ChaosQueue, workers: Workers, markers: Path
) -> None:
    config = {"marker_dir": str(markers), "sleep_seconds": 8}
    urn = queue.submit("dup-remote", config)
    first = workers(EXECUTOR_MAX_CONCURRENT_TASKS="1", EXECUTOR_RETRY_DELAY_SECONDS="2")
    assert wait_until(lambda: runs(markers).get("dup-remote") == (1, 0))
    started = time.monotonic()
    second = workers(EXECUTOR_RETRY_DELAY_SECONDS="2")
    queue.submit("dup-remote", config)
    assert wait_until(lambda: "runs on worker remote" in second.log(), 60), second.log()
    assert wait_until(queue.is_empty, 90)

    assert runs(markers) == {"dup-remote": (1, 1)}
    assert first.alive() and second.alive()
    assert_none_lost_doubled_or_left(
        "a copy on a second worker while the first runs",
        sandbox,
        [urn],
        markers,
        time.monotonic() - started,
    )


def test_a_source_that_leaves_a_daemon_does_not_hang_the_task(
    sandbox: Sandbox, queue: ChaosQueue, workers: Workers, markers: Path
) -> None:
    daemon = queue.submit("daemon", {"marker_dir": str(markers), "daemon_seconds": 600})
    started = time.monotonic()
    workers(EXECUTOR_MAX_CONCURRENT_TASKS="1")
    assert wait_until(lambda: terminal_statuses(sandbox, daemon), 60)
    after = queue.submit("after-daemon", {"marker_dir": str(markers)})
    assert wait_until(lambda: terminal_statuses(sandbox, after), 60)

    report = report_of(sandbox, daemon)
    assert sandbox.gms.last_result(daemon)["status"] == "SUCCESS"  # type: ignore[index]
    assert "; killed 1 process left behind by the task." in report
    [pid] = [int(line) for line in (markers / "daemon.pids").read_text().split()]
    assert wait_until(lambda: not alive(pid), 10)
    assert sandbox.gms.last_result(after)["status"] == "SUCCESS"  # type: ignore[index]
    assert_none_lost_doubled_or_left(
        "a source leaves a daemon holding its output",
        sandbox,
        [daemon, after],
        markers,
        time.monotonic() - started,
    )


def test_only_the_last_task_directories_are_kept(
    sandbox: Sandbox, queue: ChaosQueue, workers: Workers, markers: Path, tmp_path: Path
) -> None:
    tasks_dir = tmp_path / "workers" / "tasks"
    for n in range(3):  # left by a worker that died mid-task, long ago
        old = tasks_dir / f"old-{n}.1"
        (old / "tmp").mkdir(parents=True)
        (old / "ingestion.log").write_text("old\n")
        os.utime(old, (1_000_000 + n, 1_000_000 + n))
    started = time.monotonic()
    workers(EXECUTOR_KEEP_TASK_DIRS="2", EXECUTOR_MAX_CONCURRENT_TASKS="1")
    urns = []
    for n in range(4):
        urns.append(queue.submit(f"keep-{n}", {"marker_dir": str(markers), "lines": 2}))
        assert wait_until(lambda u=urns[-1]: terminal_statuses(sandbox, u), 60)

    def kept() -> list[str]:
        return sorted(p.name for p in tasks_dir.iterdir())

    assert wait_until(lambda: kept() == ["keep-2.1", "keep-3.1"], 10), kept()
    assert not (tasks_dir / "keep-3.1" / "tmp").exists()
    assert (tasks_dir / "keep-3.1" / "ingestion.log").exists()
    assert_none_lost_doubled_or_left(
        "EXECUTOR_KEEP_TASK_DIRS=2 over 4 tasks and 3 stale dirs",
        sandbox,
        urns,
        markers,
        time.monotonic() - started,
    )


def test_a_150_s_gms_outage_at_intake_fails_nothing(
    sandbox: Sandbox, queue: ChaosQueue, workers: Workers, markers: Path
) -> None:
    urns = [queue.submit(f"outage-{n}", {"marker_dir": str(markers)}) for n in range(2)]
    sandbox.gms.fail_with(503)
    try:
        worker = workers(
            EXECUTOR_GMS_RETRY_SECONDS="2",
            EXECUTOR_RETRY_DELAY_SECONDS="5",
            EXECUTOR_MAX_ATTEMPTS="3",
        )
        time.sleep(150)
        assert runs(markers) == {}
    finally:
        sandbox.gms.fail_with(None)
    recovered_at = time.monotonic()
    assert wait_until(lambda: all(terminal_statuses(sandbox, u) for u in urns), 240)
    recovered = time.monotonic() - recovered_at

    assert [sandbox.gms.last_result(u)["status"] for u in urns] == ["SUCCESS"] * 2  # type: ignore[index]
    assert "gave up" not in worker.log()
    # Delivered more often than EXECUTOR_MAX_ATTEMPTS, and never given up on.
    assert endings(worker).count("release") > 3
    assert_none_lost_doubled_or_left(
        "GMS down 150 s while two requests wait", sandbox, urns, markers, recovered
    )


def test_non_json_signal_replies_do_not_stop_the_cancel_watch(
    sandbox: Sandbox, queue: ChaosQueue, workers: Workers, markers: Path
) -> None:
    urn = queue.submit("garbled", {"marker_dir": str(markers), "sleep_seconds": 600})
    worker = workers()
    assert wait_until(lambda: runs(markers).get("garbled") == (1, 0), 60)
    sandbox.gms.garble_reads("dataHubExecutionRequestSignal", 5)
    assert wait_until(lambda: sandbox.gms.garbled_replies >= 5, 30)
    sandbox.gms.put_aspect(urn, "dataHubExecutionRequestSignal", KILL)
    killed_at = time.monotonic()
    assert wait_until(lambda: terminal_statuses(sandbox, urn), 60)

    assert sandbox.gms.last_result(urn)["status"] == "CANCELLED"  # type: ignore[index]
    assert "cannot read the cancel signal" in worker.log()
    assert worker.alive()
    assert_none_lost_doubled_or_left(
        "GMS answers non-JSON to signal reads, then KILL",
        sandbox,
        [urn],
        markers,
        time.monotonic() - killed_at,
    )
