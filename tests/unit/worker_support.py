"""Helpers for the worker's tests: a worker running in a thread, messages, and a flaky GMS."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from remote_executor.errors import GmsUnavailableError
from remote_executor.gms import MemoryReporter
from remote_executor.messages import build_message
from remote_executor.models import TERMINAL_STATUSES, TaskResult
from remote_executor.task import TaskContext

WaitFor = Callable[..., bool]
MakeContext = Callable[..., TaskContext]
BAD_RECIPE = "source:\n  type: fake\n   config: {}\n"
GMS_DOWN = "GMS answered 503 for POST http://gms/aspects?action=ingestProposal"


class RefusingReporter(MemoryReporter):
    """A MemoryReporter whose GMS refuses the first ``failures`` terminal results (all if None)."""

    def __init__(self, failures: int | None = None) -> None:
        super().__init__()
        self._failures = failures
        self.refused = 0

    def report(self, urn: str, result: TaskResult) -> None:
        if result.status.is_terminal and (self._failures is None or self.refused < self._failures):
            self.refused += 1
            raise GmsUnavailableError(GMS_DOWN)
        super().report(urn, result)


def message(request_id: str, recipe: str, executor_id: str = "remote", **kwargs: Any) -> str:
    return build_message(request_id, recipe, executor_id, **kwargs)


def edited_message(request_id: str, recipe: str, **input_changes: Any) -> str:
    """A message whose input value (inside aspect.value) was changed."""
    body = json.loads(message(request_id, recipe))
    value = json.loads(body["aspect"]["value"])
    value.update(input_changes)
    body["aspect"]["value"] = json.dumps(value)
    return json.dumps(body)


def terminal(reporter: MemoryReporter, urn: str) -> bool:
    return any(status in TERMINAL_STATUSES for status in reporter.statuses(urn))


def runs(markers: Path) -> int:
    """How many times the fake CLI started."""
    return len(list(markers.glob("*.json")))
