"""The worker's own knobs, apart from the task's (``TaskContext``) and from where they come
from (``Settings.worker_config``)."""

from __future__ import annotations

from dataclasses import dataclass

from remote_executor.queue.base import MAX_VISIBILITY_SECONDS

# Receives of one message after which it is failed whatever GMS says: a guard against a
# message that loops for a reason nobody foresaw. Runs are counted in GMS, not here.
MAX_RECEIVES = 50
# Time kept in hand at the end of a lease: a task whose lease has less left than the kill
# grace plus this is stopped, so that it is reported before anyone else can receive it.
LEASE_MARGIN_SECONDS = 15.0


def max_task_seconds(lease_seconds: int) -> float:
    """The longest task timeout a message's visibility can cover: 12 h minus one lease."""
    return MAX_VISIBILITY_SECONDS - lease_seconds


@dataclass(frozen=True)
class WorkerConfig:
    """The worker's own knobs (the rest lives in TaskContext)."""

    worker_id: str
    max_concurrent_tasks: int = 4
    lease_seconds: int = 300
    report_interval_seconds: float = 5.0
    poll_wait_seconds: int = 20
    foreign_visibility_seconds: int = 30
    max_attempts: int = 3
    max_receives: int = MAX_RECEIVES
    shutdown_grace_seconds: float = 100.0
    signal_poll_seconds: float = 3.0
    kill_grace_seconds: float = 10.0
    # How long a message released after a GMS failure stays invisible (it grows with the
    # message's receive count, up to ``max_retry_delay_seconds``).
    retry_delay_seconds: int = 30
    max_retry_delay_seconds: int = 900
    # While GMS refuses the token, how often to ask again.
    token_recheck_seconds: float = 60.0
    max_visibility_seconds: float = MAX_VISIBILITY_SECONDS
    keep_task_dirs: int = 20
    # Run the input GMS holds for the urn, never the message's copy (DESIGN.md: the queue is a
    # doorbell); off only for queues fed by producers that cannot write to GMS.
    require_gms_input: bool = True

    @property
    def stale_heartbeat_seconds(self) -> float:
        """A RUNNING result whose heartbeat is older than this has no live worker."""
        return 3 * self.report_interval_seconds

    @property
    def lease_stop_margin_seconds(self) -> float:
        """Remaining visibility below which a task is stopped."""
        return self.kill_grace_seconds + LEASE_MARGIN_SECONDS
