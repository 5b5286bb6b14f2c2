"""What the bridge forwards: an UPSERT of a request's input whose executor id it serves.

A change event here is a MetadataChangeLog as plain JSON (what datahub-actions hands an
action, and what events decodes from GMS's Events API). The message sent is the one of
DESIGN.md, or the truncated stub when the input would not fit in an SQS message; the
worker then reads the input from GMS, where it is anyway the input that runs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from remote_executor.messages import ENTITY_TYPE, INPUT_ASPECT, TRUNCATED_ASPECT, message_for

# SQS's default (and moto's) largest message; a queue may allow up to 1 MiB.
SQS_MAX_MESSAGE_BYTES = 262_144
# What DataHub's own executor action assumes for an input that names no executor.
DEFAULT_EXECUTOR_ID = "default"
# GMS logs UPSERTs for every write; RESTATE replays (restore-indices) and deletes run nothing.
_FORWARDED_CHANGES = frozenset({"UPSERT", "CREATE"})


class Sender(Protocol):
    """Where one executor id's requests go (SqsQueue, MemoryQueue)."""

    def send(self, body: str) -> str:
        """Queue body; the queue's message id, or QueueError."""
        ...


@dataclass(frozen=True)
class Forwarded:
    """A request queued for ``executor_id``; ``truncated`` when the stub was sent."""

    urn: str
    executor_id: str
    message_id: str
    truncated: bool


@dataclass(frozen=True)
class Skipped:
    """A change the bridge leaves alone, and why (logged at debug, counted by reason)."""

    reason: str
    urn: str | None = None
    executor_id: str | None = None


def truncated_message(urn: str) -> str:
    """The stub of DESIGN.md: the urn alone, for an input too large for the queue."""
    stub = {"entityType": ENTITY_TYPE, "entityUrn": urn, "changeType": "UPSERT"}
    return json.dumps({**stub, "aspectName": TRUNCATED_ASPECT})


class Forwarder:
    """Queues each request whose executor id is in ``queues``, and nothing else."""

    def __init__(
        self, queues: Mapping[str, Sender], max_message_bytes: int = SQS_MAX_MESSAGE_BYTES
    ) -> None:
        if not queues:
            raise ValueError("the bridge needs at least one executor id and its queue")
        self._queues = dict(queues)
        self._max_message_bytes = max_message_bytes

    @property
    def executor_ids(self) -> list[str]:
        return sorted(self._queues)

    def forward(self, change: Mapping[str, Any]) -> Forwarded | Skipped:
        """Queue change's request if it is one of ours; QueueError when the send fails."""
        decided = self.decide(change)
        if isinstance(decided, Skipped):
            return decided
        urn, executor_id, value = decided
        body = message_for(urn, value)
        truncated = len(body.encode()) > self._max_message_bytes
        if truncated:
            body = truncated_message(urn)
        message_id = self._queues[executor_id].send(body)
        return Forwarded(urn, executor_id, message_id, truncated)

    def decide(self, change: Mapping[str, Any]) -> tuple[str, str, dict[str, Any]] | Skipped:
        """(urn, executor id, input) of a change to forward, or why it is skipped."""
        if change.get("entityType") != ENTITY_TYPE or change.get("aspectName") != INPUT_ASPECT:
            return Skipped("not an execution request input")
        urn = change.get("entityUrn")
        if not isinstance(urn, str):
            return Skipped("no entityUrn")
        if change.get("changeType") not in _FORWARDED_CHANGES:
            return Skipped(f"changeType {change.get('changeType')}", urn)
        value = _aspect_value(change.get("aspect"))
        if value is None:
            return Skipped("aspect value is not a JSON object", urn)
        executor_id = value.get("executorId") or DEFAULT_EXECUTOR_ID
        if not isinstance(executor_id, str) or executor_id not in self._queues:
            return Skipped("executor id not served here", urn, str(executor_id))
        return urn, executor_id, value


def _aspect_value(aspect: object) -> dict[str, Any] | None:
    """A GenericAspect's JSON value ({"value": "<json>", "contentType": ...}) decoded."""
    if not isinstance(aspect, Mapping):
        return None
    raw = aspect.get("value")
    if isinstance(raw, bytes):
        raw = raw.decode(errors="replace")
    try:
        value = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
