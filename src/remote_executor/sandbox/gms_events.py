"""The stand-in's change log: a MetadataChangeLog for every accepted write, with offsets.

GMS emits a MetadataChangeLog (Kafka topic MetadataChangeLog_Versioned_v1) for every
proposal it commits, with the aspect written and the one it replaced. The stand-in keeps
them in one partition, in commit order, and serves them through the Events API
(gms_routes: GET /openapi/v1/events/poll), which long-polls: a read with nothing new
waits for the next write or its timeout.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from dataclasses import dataclass

from remote_executor.sandbox.gms_schema import JsonDict, PayloadError, Proposal

MCL_TOPIC = "MetadataChangeLog_Versioned_v1"
# What GMS writes as the creator of an aspect the stand-in's tokens do not name.
_ACTOR = "urn:li:corpuser:datahub"


@dataclass(frozen=True)
class LoggedChange:
    """One MetadataChangeLog at ``offset`` of the log's only partition, logged at ``at_ms``."""

    offset: int
    at_ms: int
    change: JsonDict


def change_log(proposal: Proposal, previous: JsonDict | None, now_ms: int) -> JsonDict:
    """The MetadataChangeLog GMS emits for proposal, in the JSON of DataHub's schema classes."""
    change: JsonDict = {
        "entityType": proposal.entity_type,
        "entityUrn": proposal.urn,
        "changeType": "UPSERT",
        "aspectName": proposal.aspect_name,
        "aspect": {"value": json.dumps(proposal.value), "contentType": "application/json"},
        "systemMetadata": {"lastObserved": now_ms, "runId": "no-run-id-provided"},
        "created": {"time": now_ms, "actor": _ACTOR},
    }
    if previous is not None:
        change["previousAspectValue"] = {
            "value": json.dumps(previous),
            "contentType": "application/json",
        }
    return change


class EventLog:
    """An append-only, thread-safe log; offsets count from 0."""

    def __init__(self) -> None:
        self._grew = threading.Condition()
        self._changes: list[LoggedChange] = []

    def append(self, change: JsonDict, at_ms: int) -> int:
        with self._grew:
            offset = len(self._changes)
            self._changes.append(LoggedChange(offset, at_ms, change))
            self._grew.notify_all()
            return offset

    @property
    def end(self) -> int:
        """The offset the next change will get."""
        with self._grew:
            return len(self._changes)

    def first_since(self, since_ms: int) -> int:
        """The offset of the first change logged at or after since_ms (end if none)."""
        with self._grew:
            for logged in self._changes:
                if logged.at_ms >= since_ms:
                    return logged.offset
            return len(self._changes)

    def read(self, start: int, limit: int, wait_seconds: float) -> list[LoggedChange]:
        """Up to limit changes from start on, waiting up to wait_seconds for the first."""
        deadline = time.monotonic() + wait_seconds
        with self._grew:
            while len(self._changes) <= start:
                left = deadline - time.monotonic()
                if left <= 0:
                    return []
                self._grew.wait(left)
            return self._changes[start : start + limit]

    def all(self) -> list[LoggedChange]:
        with self._grew:
            return list(self._changes)


# GMS's ExternalEventsController caps both (the wait at 60 s before MetadataChangeLog
# topics could be polled, at 10 s since).
MAX_LIMIT = 5000
MAX_POLL_SECONDS = 10
_PARTITION_KEY = f"{MCL_TOPIC}-0"


def poll(log: EventLog, query: dict[str, list[str]]) -> tuple[int, JsonDict | None]:
    """GET /openapi/v1/events/poll: the changes after offsetId, as the Events API answers.

    Only MetadataChangeLog_Versioned_v1 is served (what the bridge reads; GMS asks for the
    privilege GET_METADATA_CHANGE_LOG_EVENTS on it); other topics get GMS's 403.

    offsetId is what GMS gives: Base64 of {"<topic>-<partition>": next offset}. Without it,
    the poll starts at the end of the log, or lookbackWindowDays back.
    """
    topic = _one(query, "topic")
    if topic != MCL_TOPIC:
        # GMS authorizes per topic, and a topic it does not know fails that check: 403, no body
        return 403, None
    limit = _number(query, "limit", 100, MAX_LIMIT)
    wait = _number(query, "pollTimeoutSeconds", 10, MAX_POLL_SECONDS)
    offset_id = query.get("offsetId", [None])[0]
    if offset_id is not None:
        start = _decode_offset(offset_id)
    elif "lookbackWindowDays" in query:
        days = _number(query, "lookbackWindowDays", 0, 10_000)
        start = log.first_since(int((time.time() - days * 86400) * 1000))
    else:
        start = log.end
    changes = log.read(start, limit, wait)
    events = [
        {"contentType": "application/json", "value": json.dumps(logged.change)}
        for logged in changes
    ]
    next_offset = start + len(changes)
    return 200, {"offsetId": encode_offset(next_offset), "count": len(events), "events": events}


def encode_offset(offset: int) -> str:
    return base64.b64encode(json.dumps({_PARTITION_KEY: offset}).encode()).decode()


def _decode_offset(offset_id: str) -> int:
    try:
        offsets = json.loads(base64.b64decode(offset_id, validate=True))
        offset = offsets[_PARTITION_KEY]
    except (ValueError, TypeError, KeyError, binascii.Error) as exc:
        raise PayloadError(f"offsetId {offset_id!r} is not an offset GMS gave") from exc
    if not isinstance(offset, int) or offset < 0:
        raise PayloadError(f"offsetId {offset_id!r} is not an offset GMS gave")
    return offset


def _one(query: dict[str, list[str]], name: str) -> str:
    values = query.get(name)
    if not values:
        raise PayloadError(f"missing required parameter {name}")
    return values[0]


def _number(query: dict[str, list[str]], name: str, default: int, most: int) -> int:
    raw = query.get(name, [str(default)])[0]
    try:
        value = int(raw)
    except ValueError as exc:
        raise PayloadError(f"{name} must be an integer, got {raw!r}") from exc
    if not 0 <= value <= most:
        raise PayloadError(f"{name} must be between 0 and {most}, got {value}")
    return value
