"""The values that travel along a task's path: request in, result out."""

from __future__ import annotations

import enum
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

URN_PREFIX = "urn:li:dataHubExecutionRequest:"


class Status(str, enum.Enum):
    """Execution request statuses as DataHub's ExecutionRequestResult knows them."""

    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    CANCELLED = "CANCELLED"
    TIMEOUT = "TIMEOUT"
    ABORTED = "ABORTED"
    DUPLICATE = "DUPLICATE"

    @property
    def is_terminal(self) -> bool:
        """True for every status that ends a task."""
        return self is not Status.RUNNING


# The values of every status that ends a task, as GMS stores them.
TERMINAL_STATUSES = frozenset(status.value for status in Status if status.is_terminal)


class TaskKind(str, enum.Enum):
    """The tasks this executor runs; both go through ``datahub ingest run``."""

    RUN_INGEST = "RUN_INGEST"
    TEST_CONNECTION = "TEST_CONNECTION"


def request_urn(request_id: str) -> str:
    """The execution request urn for an id."""
    return f"{URN_PREFIX}{request_id}"


class ExecutionRequest(BaseModel):
    """One decoded execution request: what to run and on whose behalf."""

    model_config = ConfigDict(frozen=True)

    request_id: str
    task: TaskKind
    executor_id: str
    recipe: str
    requested_at_ms: int | None = None
    ingestion_source: str | None = None
    cli_version: str | None = None
    debug_mode: bool = False
    extra_env_vars: dict[str, str] = Field(default_factory=dict)
    extra_pip_requirements: list[str] = Field(default_factory=list)
    # Plugins (acryl-datahub extras) beyond the recipe's source and sink types.
    extra_pip_plugins: list[str] = Field(default_factory=list)
    # args.timeout_seconds: this request's own limit, instead of EXECUTOR_TASK_TIMEOUT_SECONDS.
    timeout_seconds: float | None = None

    @property
    def urn(self) -> str:
        """The request's urn, the key of everything GMS holds about it."""
        return request_urn(self.request_id)


class TaskResult(BaseModel):
    """What GMS is told about a request: a status and why."""

    model_config = ConfigDict(frozen=True)

    status: Status
    report: str
    start_time_ms: int
    duration_ms: int | None = None
    structured_report: str | None = None
    task: TaskKind = TaskKind.RUN_INGEST

    def to_aspect(self) -> dict[str, Any]:
        """The ``dataHubExecutionRequestResult`` aspect value, as DataHub's schema names it."""
        aspect: dict[str, Any] = {
            "status": self.status.value,
            "report": self.report,
            "startTimeMs": self.start_time_ms,
        }
        if self.duration_ms is not None:
            aspect["durationMs"] = self.duration_ms
        if self.structured_report is not None:
            aspect["structuredReport"] = {
                "type": self.task.value,
                "serializedValue": self.structured_report,
                "contentType": "application/json",
            }
        return aspect

    def to_json(self) -> str:
        """The aspect value as the JSON string GMS expects inside a proposal."""
        return json.dumps(self.to_aspect(), separators=(",", ":"))
