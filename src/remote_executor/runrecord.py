"""Which run of a request this is, by whom, and whether it is alive: kept in GMS.

A RUNNING result's second report line is the run record, written by the executor
(never by the log, which starts further down)::

    Run 2 of at most 3, worker remote, instance remote@ip-10-0-1-5:8:4f2a9c, heartbeat 17648800

DataHub's ``ExecutionRequestResult`` has no field for it (status, report,
structuredReport, startTimeMs, durationMs), and the structured report belongs to the
CLI's report, which the UI parses; a line of the report keeps the aspect valid and is
read by people too. The worker that receives a copy of the request reads it to count
runs (``EXECUTOR_MAX_ATTEMPTS`` counts starts of the child, not deliveries) and to see
whether another worker still runs it (a heartbeat younger than three report intervals).
"""

from __future__ import annotations

import os
import re
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any

_LINE = re.compile(
    r"^Run (?P<attempt>\d+) of at most (?P<limit>\d+), worker (?P<worker>\S+), "
    r"instance (?P<instance>\S+), (?P<state>heartbeat|released) (?P<at>\d+)$"
)


def new_instance(worker_id: str) -> str:
    """An id of this worker process, different after every restart."""
    host = socket.gethostname().split(".")[0] or "host"
    return f"{worker_id}@{host}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def now_ms() -> int:
    """Wall-clock milliseconds: heartbeats are compared across machines."""
    return int(time.time() * 1000)


@dataclass(frozen=True)
class RunRecord:
    """One run of a request: its number, who runs it, and its last sign of life."""

    attempt: int
    limit: int
    worker_id: str
    instance: str
    at_ms: int
    released: bool = False

    def line(self) -> str:
        """The report line that carries this record."""
        state = "released" if self.released else "heartbeat"
        return (
            f"Run {self.attempt} of at most {self.limit}, worker {self.worker_id}, "
            f"instance {self.instance}, {state} {self.at_ms}"
        )

    def beat(self, at_ms: int | None = None) -> RunRecord:
        """The same run, alive now."""
        return RunRecord(self.attempt, self.limit, self.worker_id, self.instance, at_ms or now_ms())

    def release(self) -> RunRecord:
        """The same run, given back by its worker (another may start at once)."""
        return RunRecord(
            self.attempt, self.limit, self.worker_id, self.instance, now_ms(), released=True
        )

    def alive(self, stale_after_seconds: float, at_ms: int | None = None) -> bool:
        """Its worker beat within ``stale_after_seconds`` and did not give it back."""
        age = (at_ms or now_ms()) - self.at_ms
        return not self.released and age < stale_after_seconds * 1000

    @classmethod
    def parse(cls, result: dict[str, Any] | None) -> RunRecord | None:
        """The record of a RUNNING result aspect, or None (other status, or not ours)."""
        if not result or result.get("status") != "RUNNING":
            return None
        report = result.get("report")
        if not isinstance(report, str):
            return None
        lines = report.split("\n", 2)
        match = _LINE.match(lines[1]) if len(lines) > 1 else None
        if match is None:
            return None
        return cls(
            attempt=int(match["attempt"]),
            limit=int(match["limit"]),
            worker_id=match["worker"],
            instance=match["instance"],
            at_ms=int(match["at"]),
            released=match["state"] == "released",
        )
