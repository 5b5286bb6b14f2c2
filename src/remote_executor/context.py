"""What every task of one executor shares, and why a task may be stopped early."""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from remote_executor import runspec
from remote_executor.handoff import Handoff
from remote_executor.models import Status
from remote_executor.secrets import Redactor, SecretSources
from remote_executor.venvs import Environments


@dataclass(frozen=True)
class TaskContext:
    """What every task of one executor shares."""

    datahub_command: tuple[str, ...]
    work_dir: Path
    base_env: dict[str, str]
    secrets: SecretSources
    redactor: Redactor
    handoff: Handoff
    gms_url: str | None
    token: str | None
    # Which CLI each request runs: installed, bundled, or from the cache of environments.
    environments: Environments
    # Used when the recipe has no sink and there is no GMS (``executor exec``): a file
    # in the task directory, so the user sees what would have been ingested.
    file_sink_when_no_gms: bool = False
    report_max_chars: int = 800_000
    worker_id: str = "local"
    kill_grace_seconds: float = 10.0
    timeout_seconds: float = 39_600.0
    # The longest a request's own args.timeout_seconds may ask for (12 h minus a lease).
    max_timeout_seconds: float = 39_600.0
    memory_limit_mb: int | None = None
    log_max_mb: int | None = 200
    reserved: runspec.Reserved = field(init=False)

    def __post_init__(self) -> None:
        reserved = runspec.Reserved(frozenset(self.base_env), self.gms_url)
        object.__setattr__(self, "reserved", reserved)


class StopKind(enum.Enum):
    """Why a task was stopped early, which decides its status."""

    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    LEASE_LOST = "lease lost"
    SHUTDOWN = "shutdown"

    @property
    def status(self) -> Status:
        """The terminal status of a task stopped this way (SHUTDOWN is released, not final)."""
        if self is StopKind.TIMEOUT:
            return Status.TIMEOUT
        return Status.CANCELLED if self is StopKind.CANCELLED else Status.FAILURE

    @property
    def title(self) -> str:
        """How the report's status line starts."""
        return {StopKind.TIMEOUT: "Timed out", StopKind.CANCELLED: "Cancelled"}.get(self, "Stopped")


def start_timer(
    limit: float, from_request: bool, stop: Callable[[StopKind, str], None]
) -> threading.Timer:
    """Calls ``stop`` with TIMEOUT after ``limit`` seconds, saying where the limit was set."""
    source = (
        "args.timeout_seconds of the request" if from_request else "EXECUTOR_TASK_TIMEOUT_SECONDS"
    )
    timer = threading.Timer(limit, stop, (StopKind.TIMEOUT, f"limit {limit:g} s, set by {source}"))
    timer.daemon = True
    timer.start()
    return timer
