"""How a message ends: acknowledged, released for a retry, or moved to the dead letters.

``end_message`` is the only place that deletes, releases or dead-letters a
message, so every message's end is logged the same way.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from typing import Any

import structlog

from remote_executor.errors import QueueError
from remote_executor.health import Metrics
from remote_executor.queue.base import Lease, Queue

log = structlog.get_logger("remote_executor.worker")


class Outcome(enum.Enum):
    """How a message ends."""

    ACKNOWLEDGE = "acknowledge"
    RELEASE = "release"
    DEAD_LETTER = "dead-letter"


@dataclass(frozen=True)
class Decision:
    """An outcome, with the delay before a released message is visible again."""

    outcome: Outcome
    reason: str
    delay_seconds: int = 0


BODY_PREFIX_CHARS = 48


def describe_body(body: str) -> dict[str, Any]:
    """A message body for a log line: size, hash and a short prefix, never the whole of it.

    A body carries a recipe and its inline values; the prefix is cut before any recipe
    text starts for a well-formed message, and the log's redactor masks known secrets.
    """
    data = body.encode("utf-8", errors="replace")
    return {
        "body_bytes": len(data),
        "body_sha256": hashlib.sha256(data).hexdigest()[:16],
        "body_prefix": body[:BODY_PREFIX_CHARS],
    }


def end_message(
    queue: Queue, lease: Lease, decision: Decision, metrics: Metrics | None = None
) -> None:
    """Apply the decision; queue errors are logged, the message then comes back by itself."""
    outcome = decision.outcome
    try:
        if outcome is Outcome.DEAD_LETTER and queue.dead_letter_url is None:
            log.error(
                "message dropped: no dead-letter queue (set EXECUTOR_DEAD_LETTER_QUEUE_URL "
                "or a RedrivePolicy on the queue)",
                message_id=lease.message_id,
                reason=decision.reason,
                **describe_body(lease.body),
            )
            outcome = Outcome.ACKNOWLEDGE
        if outcome is Outcome.ACKNOWLEDGE:
            queue.delete(lease)
        elif outcome is Outcome.DEAD_LETTER:
            _dead_letter(queue, lease, decision.reason)
        else:
            queue.release(lease, decision.delay_seconds)
    except QueueError as exc:
        log.error("could not end message", message_id=lease.message_id, error=str(exc))
    if metrics is not None:
        metrics.messages_ended.labels(outcome.value).inc()
    log.info(
        "message ended",
        message_id=lease.message_id,
        outcome=outcome.value,
        reason=decision.reason,
    )


def _dead_letter(queue: Queue, lease: Lease, reason: str) -> None:
    try:
        queue.dead_letter(lease, reason)
    except QueueError as exc:
        # Never spin on a poison message: logged (described, not whole), then it goes.
        log.error(
            "dead-letter queue refused the message; dropped",
            message_id=lease.message_id,
            reason=reason,
            error=str(exc),
            **describe_body(lease.body),
        )
        queue.delete(lease)
