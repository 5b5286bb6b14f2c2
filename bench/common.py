"""What every benchmark shares: the sandbox endpoints, worker processes, clocks, tables.

Every benchmark runs against the local sandbox (moto's SQS and Secrets Manager, the GMS
stand-in) in this process, and runs the executor as users do: ``executor run`` in a
subprocess of its own. Times that cross processes are wall-clock (``time.time()``), the
one clock every process on the machine shares; the worker's JSON log gives its side of
a task (``message received`` at debug level) with microseconds.
"""

from __future__ import annotations

import json
import os
import platform
import random
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from remote_executor.messages import build_message
from remote_executor.models import TERMINAL_STATUSES, request_urn
from remote_executor.sandbox import Sandbox

BENCH = Path(__file__).parent
RESULTS = BENCH / "results"
# A child that prints its start and exit time and nothing else: the executor is measured.
TRIVIAL_CHILD = BENCH / "children" / "trivial.sh"
TOKEN = "bench-token-5d1f8a"


@dataclass
class Result:
    """One benchmark's outcome: its table, its raw figures, and its goals met or not."""

    name: str
    title: str
    table: str
    data: dict[str, Any]
    goals: list[tuple[str, bool]] = field(default_factory=list)

    def markdown(self) -> str:
        """Title, table and goals, as printed."""
        lines = [f"### {self.title}", "", self.table, ""]
        lines += [f"- {'met' if met else 'NOT met'}: {goal}" for goal, met in self.goals]
        return "\n".join(lines)

    def write(self, directory: Path = RESULTS) -> Path:
        """``bench/results/<name>.json``: the figures, the goals, and the machine."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.name}.json"
        document = {
            "name": self.name,
            "title": self.title,
            "goals": [{"goal": goal, "met": met} for goal, met in self.goals],
            "data": self.data,
            "table": self.table,
            "machine": machine(),
        }
        path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        return path


def machine() -> dict[str, Any]:
    """Where and when the figures were taken."""
    return {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
    }


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile: a value that was observed, never an interpolation."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


def ms(seconds: float) -> str:
    """Seconds as milliseconds for a table cell."""
    return f"{seconds * 1000:.1f}"


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def wait_until(
    condition: Callable[[], object], timeout_seconds: float, what: str, interval: float = 0.002
) -> None:
    """Poll until condition() is truthy; a clear error naming ``what`` if it never is."""
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not seen within {timeout_seconds:g} s")
        time.sleep(interval)


def gaps(count: int, seed: int = 6, low: float = 0.05, high: float = 0.35) -> list[float]:
    """Pauses before each send: sparse traffic, the same for every system in a run."""
    rng = random.Random(seed)
    return [rng.uniform(low, high) for _ in range(count)]


def trivial_recipe() -> str:
    """A recipe for the trivial child, which never reads it."""
    return "source:\n  type: trivial\n  config: {}\n"


@dataclass
class Worker:
    """``executor run`` as a real subprocess, its JSON log in a file."""

    proc: subprocess.Popen[bytes]
    log_path: Path
    work_dir: Path
    sandbox: Sandbox
    queue_url: str

    def log_events(self) -> list[dict[str, Any]]:
        """Every JSON line the worker wrote so far."""
        events = []
        for line in self.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("{"):
                events.append(json.loads(line))
        return events

    def received_at(self) -> dict[str, float]:
        """Message id to the wall-clock time the worker first received it."""
        received: dict[str, float] = {}
        for event in self.log_events():
            if event.get("event") == "message received":
                received.setdefault(event["message_id"], timestamp(event))
        return received

    def task_log(self, request_id: str) -> Path:
        """The task's full log on the worker."""
        return self.work_dir / f"{request_id}.1" / "ingestion.log"

    def stop(self) -> None:
        """Drain (SIGTERM) and wait; kill if it hangs."""
        stop_all([self])

    def tail(self, lines: int = 20) -> str:
        """The end of the worker's log, for error messages."""
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


def stop_all(workers: Iterable[Worker]) -> None:
    """Drain every worker at once; kill a hung one.

    A drain waits for the long poll in flight, up to 20 s: a message sent to each queue
    wakes it, and the draining worker hands that message back untouched.
    """
    running = [worker for worker in workers if worker.proc.poll() is None]
    for worker in running:
        worker.proc.send_signal(signal.SIGTERM)
    for worker in running:
        sqs = worker.sandbox.aws.client("sqs")
        sqs.send_message(QueueUrl=worker.queue_url, MessageBody="wake up: the worker is stopping")
    for proc in (worker.proc for worker in running):
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def timestamp(event: dict[str, Any]) -> float:
    """The wall-clock time of a worker log event (structlog's ISO timestamp, UTC)."""
    return datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()


def start_worker(
    sandbox: Sandbox,
    queue_url: str,
    directory: Path,
    child: Path | None = TRIVIAL_CHILD,
    **env: str,
) -> Worker:
    """Start ``executor run`` on ``queue_url`` and wait until its receive loop runs.

    ``child`` is the worker's EXECUTOR_DATAHUB_COMMAND; None sets none, so the worker runs
    the datahub CLI installed beside it and knows its version (a request's ``args.version``
    can then pick another CLI: with a configured command the installed version is unknown).
    """
    directory.mkdir(parents=True, exist_ok=True)
    log_path = directory / f"worker-{uuid.uuid4().hex[:6]}.log"
    work_dir = directory / "tasks"
    settings = {
        "EXECUTOR_LOG_FORMAT": "json",
        "EXECUTOR_LOG_LEVEL": "DEBUG",
        # The benchmarks read every task's log after the run: keep every task directory.
        "EXECUTOR_KEEP_TASK_DIRS": "1000000",
        **env,
    }
    if child is not None:
        settings.setdefault("EXECUTOR_DATAHUB_COMMAND", str(child))
    elif os.environ.get("EXECUTOR_DATAHUB_COMMAND") and "EXECUTOR_DATAHUB_COMMAND" not in env:
        # The worker inherits this process's environment: unset it here to run the native CLI.
        raise RuntimeError("EXECUTOR_DATAHUB_COMMAND is set in this environment: unset it")
    proc = sandbox.start_worker(work_dir, log_path, queue_url, **settings)
    worker = Worker(proc, log_path, work_dir, sandbox, queue_url)

    def started() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"the worker exited with {proc.returncode}:\n{worker.tail()}")
        return "Starting remote executor worker" in log_path.read_text(errors="replace")

    wait_until(started, 60, "the worker's start")
    return worker


class Submitter:
    """Sends requests to a queue and remembers when, by message id and by urn."""

    def __init__(self, sandbox: Sandbox, queue_url: str) -> None:
        self._sqs = sandbox.aws.client("sqs")
        self._gms = sandbox.gms
        self._url = queue_url
        self.sent: dict[str, tuple[str, float]] = {}  # request id -> (message id, sent at)

    def submit(self, recipe: str, prefix: str = "bench", **kwargs: Any) -> str:
        """Send one request now; its request id. ``kwargs`` go to ``build_message``
        (``version="1.7.0.15"`` is its ``args.version``)."""
        request_id = f"{prefix}-{uuid.uuid4().hex[:10]}"
        body = self._gms.write_request(build_message(request_id, recipe, "remote", **kwargs))
        sent_at = time.time()
        message_id = self._sqs.send_message(QueueUrl=self._url, MessageBody=body)["MessageId"]
        self.sent[request_id] = (message_id, sent_at)
        return request_id


def accepted(sandbox: Sandbox, request_id: str, statuses: set[str]) -> float | None:
    """When GMS first accepted one of ``statuses`` for the request, if it has."""
    for status, at in sandbox.gms.accepted_times(request_urn(request_id)):
        if status in statuses:
            return at
    return None


def terminal_count(sandbox: Sandbox, request_id: str) -> int:
    """How many terminal results GMS accepted for the request (1 unless doubled)."""
    times = sandbox.gms.accepted_times(request_urn(request_id))
    return sum(1 for status, _ in times if status in TERMINAL_STATUSES)


def child_times(log_path: Path) -> tuple[float, float]:
    """(start, exit) wall-clock times the trivial child printed into its log."""
    stamps: dict[str, float] = {}
    for line in log_path.read_text(encoding="utf-8").splitlines():
        words = line.split()
        if len(words) == 4 and words[0] == "trivial-child":
            stamps[words[1]] = float(words[3])
    return stamps["started"], stamps["exits"]


def cpu_seconds(pid: int) -> float:
    """User + system time of the process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) in MB (MiB, as the kernel counts kB)."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def sandbox() -> Sandbox:
    """The endpoints, started; GMS requires TOKEN, as a real one would."""
    return Sandbox(token=TOKEN).start()


def fresh_queue(box: Sandbox, name: str) -> str:
    """A new queue of its own, so that no benchmark sees another's messages."""
    dead = box.aws.create_queue(f"{name}-dead-{uuid.uuid4().hex[:6]}")
    return box.aws.create_queue(f"{name}-{uuid.uuid4().hex[:6]}", dead)
