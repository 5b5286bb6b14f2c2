"""The chaos suite's tools: a real ``executor run`` process per worker, fresh queues, counts.

Every scenario runs the worker as a subprocess against the sandbox's moto SQS and
GMS stand-in, with the fake datahub CLI (tests/unit/fixtures/fake_datahub.py) as
the ingestion command, so a task's behaviour (sleep, hog memory, fork a tree) is
chosen by its recipe and every start and normal end leaves a marker file.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from remote_executor.messages import build_message
from remote_executor.models import TERMINAL_STATUSES, request_urn
from remote_executor.runner import group_has_live_members
from remote_executor.sandbox import Sandbox
from tests.polling import wait_for
from tests.processes import alive

FAKE_DATAHUB = Path(__file__).parents[1] / "unit" / "fixtures" / "fake_datahub.py"
CHAOS_ROWS: list[dict[str, Any]] = []


def chaos_table() -> str:
    """The rows recorded by the scenarios, as a markdown table."""
    lines = [
        "| scenario | tasks | lost | doubled | processes left | time to recover |",
        "|---|---|---|---|---|---|",
    ]
    for row in CHAOS_ROWS:
        recover = row["recover_seconds"]
        lines.append(
            f"| {row['scenario']} | {row['tasks']} | {row['lost']} | {row['doubled']} | "
            f"{row['processes_left']} | {'-' if recover is None else f'{recover:.1f} s'} |"
        )
    return "\n".join(lines)


def record(
    scenario: str,
    tasks: int,
    *,
    lost: int,
    doubled: int,
    processes_left: int,
    recover_seconds: float | None,
) -> None:
    """Add one row to the table printed at the end of the session."""
    CHAOS_ROWS.append(
        {
            "scenario": scenario,
            "tasks": tasks,
            "lost": lost,
            "doubled": doubled,
            "processes_left": processes_left,
            "recover_seconds": recover_seconds,
        }
    )


def recipe(config: dict[str, Any]) -> str:
    """A recipe for the fake CLI."""
    return yaml.safe_dump({"source": {"type": "fake", "config": config}})


def wait_until(condition: Callable[[], object], timeout_seconds: float = 120) -> bool:
    """Poll until condition() is truthy; False if it never was (a bound on a hang)."""
    return wait_for(condition, timeout_seconds, interval=0.1)


@dataclass
class ChaosQueue:
    """A fresh queue with its own dead-letter queue, so scenarios never share messages."""

    sandbox: Sandbox
    url: str = ""
    dead_letter_url: str = ""

    def __post_init__(self) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.dead_letter_url = self.sandbox.aws.create_queue(f"chaos-dead-{suffix}")
        self.url = self.sandbox.aws.create_queue(f"chaos-{suffix}", self.dead_letter_url)

    def send(self, body: str) -> None:
        """Put one message on the queue."""
        self.sandbox.aws.client("sqs").send_message(QueueUrl=self.url, MessageBody=body)

    def send_request(self, body: str) -> None:
        """Write the message's request to GMS, as every producer does, then queue it."""
        self.send(self.sandbox.gms.write_request(body))

    def submit(self, request_id: str, config: dict[str, Any], **kwargs: Any) -> str:
        """Send a request for the fake CLI; its urn."""
        self.send_request(build_message(request_id, recipe(config), "remote", **kwargs))
        return request_urn(request_id)

    def counts(self, url: str | None = None) -> tuple[int, int]:
        """(visible, in flight) messages."""
        attributes = self.sandbox.aws.client("sqs").get_queue_attributes(
            QueueUrl=url or self.url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return (
            int(attributes["ApproximateNumberOfMessages"]),
            int(attributes["ApproximateNumberOfMessagesNotVisible"]),
        )

    def is_empty(self) -> bool:
        """Nothing visible and nothing in flight."""
        return self.counts() == (0, 0)

    def take_dead_letters(self) -> list[dict[str, Any]]:
        """Take (receive and delete) every message in the dead-letter queue, with attributes."""
        client = self.sandbox.aws.client("sqs")
        taken: list[dict[str, Any]] = []
        while True:
            messages = client.receive_message(
                QueueUrl=self.dead_letter_url,
                MaxNumberOfMessages=10,
                MessageAttributeNames=["All"],
                VisibilityTimeout=600,
                WaitTimeSeconds=0,
            ).get("Messages", [])
            if not messages:
                return taken
            taken.extend(messages)
            client.delete_message_batch(
                QueueUrl=self.dead_letter_url,
                Entries=[
                    {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]}
                    for n, m in enumerate(messages)
                ],
            )


@dataclass
class WorkerProcess:
    """``executor run`` as a real subprocess, its output in a file."""

    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        """Everything the worker wrote so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def signal(self, signum: signal.Signals) -> None:
        """Send a signal to the worker process."""
        self.proc.send_signal(signum)

    def alive(self) -> bool:
        """The process still runs."""
        return self.proc.poll() is None


def start_worker(sandbox: Sandbox, queue: ChaosQueue, work_dir: Path, **env: str) -> WorkerProcess:
    """Start ``executor run`` on the queue, with the fake CLI and the given settings."""
    work_dir.mkdir(parents=True, exist_ok=True)
    log_path = work_dir / f"worker-{uuid.uuid4().hex[:6]}.log"
    settings = {
        "EXECUTOR_DATAHUB_COMMAND": f"{sys.executable} {FAKE_DATAHUB}",
        "EXECUTOR_LOG_FORMAT": "json",
        "EXECUTOR_REPORT_INTERVAL_SECONDS": "1",
        "EXECUTOR_SIGNAL_POLL_SECONDS": "0.5",
        "EXECUTOR_KILL_GRACE_SECONDS": "2",
        **env,
    }
    proc = sandbox.start_worker(work_dir / "tasks", log_path, queue.url, **settings)
    return WorkerProcess(proc, log_path)


def stop_worker(worker: WorkerProcess) -> None:
    """Stop a worker that a scenario left running (force: two signals), then kill it."""
    if worker.alive():
        worker.signal(signal.SIGTERM)
        worker.signal(signal.SIGTERM)
        try:
            worker.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.proc.kill()
            worker.proc.wait()


def terminal_statuses(sandbox: Sandbox, urn: str) -> list[str]:
    """Every terminal status GMS accepted for the request, in order."""
    return [r["status"] for r in sandbox.gms.results(urn) if r["status"] in TERMINAL_STATUSES]


def runs(markers: Path) -> dict[str, tuple[int, int]]:
    """For each run id: (starts, normal ends) of the fake CLI."""
    counts: dict[str, tuple[int, int]] = {}
    for path in markers.glob("*.json"):
        run_id = path.name.rsplit(".", 2)[0]
        starts, ends = counts.get(run_id, (0, 0))
        counts[run_id] = (starts + 1, ends)
    for path in markers.glob("*.done"):
        run_id = path.name.rsplit(".", 2)[0]
        starts, ends = counts.get(run_id, (0, 0))
        counts[run_id] = (starts, ends + 1)
    return counts


def processes_left(markers: Path) -> int:
    """Processes still alive from any task's process group, or listed in tree.pids."""
    pids = [json.loads(path.read_text())["pid"] for path in markers.glob("*.json")]
    left = sum(1 for pid in pids if group_has_live_members(pid))
    tree = markers / "tree.pids"
    if tree.exists():
        for line in tree.read_text().split():
            left += alive(int(line))
    return left
