"""GMS's Events API, ``GET {gms}/openapi/v1/events/poll``, read for MetadataChangeLogs.

The parameters and the answer are those datahub-actions' ``datahub-cloud`` event source
uses (datahub-actions/src/datahub_actions/plugin/source/acryl/): ``topic``, ``offsetId``
(opaque, the one the previous answer gave; none means "from the latest", or from
``lookbackWindowDays`` back), ``limit``, ``pollTimeoutSeconds``; the answer is
``{"offsetId": ..., "count": n, "events": [{"contentType": ..., "value": "<json>"}]}``,
each value a MetadataChangeLog in Avro's JSON, decoded here with DataHub's own schema class.
GMS serves MetadataChangeLog topics there since ExternalEventsController authorizes them
(privilege GET_METADATA_CHANGE_LOG_EVENTS); an older GMS answers 403 for them, as for a
token without the privilege.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from datahub.metadata.schema_classes import MetadataChangeLogClass

from remote_executor.errors import GmsAuthError, GmsUnavailableError
from remote_executor.gms import GmsClient

MCL_TOPIC = "MetadataChangeLog_Versioned_v1"
POLL_PATH = "/openapi/v1/events/poll"
# GMS caps a poll's wait at 10 s since it serves MetadataChangeLog topics (60 s before);
# the client's own read timeout (30 s) outlasts it.
POLL_SECONDS = 10
POLL_LIMIT = 500


@dataclass(frozen=True)
class Batch:
    """What one poll gave: the changes in order, and the offset to poll from next."""

    changes: list[dict[str, Any]]
    next_offset: str | None
    undecodable: int = 0


class EventsApi:
    """Polls one topic of GMS's Events API through a GmsClient (its token and retries)."""

    def __init__(
        self,
        gms: GmsClient,
        topic: str = MCL_TOPIC,
        lookback_days: int | None = None,
        poll_seconds: int = POLL_SECONDS,
        limit: int = POLL_LIMIT,
    ) -> None:
        self._gms = gms
        self._topic = topic
        self._lookback_days = lookback_days
        self._poll_seconds = poll_seconds
        self._limit = limit

    def poll(self, offset: str | None) -> Batch:
        """The changes after offset (GmsError when GMS cannot answer)."""
        params: dict[str, Any] = {
            "topic": self._topic,
            "limit": self._limit,
            "pollTimeoutSeconds": self._poll_seconds,
        }
        if offset is not None:
            params["offsetId"] = offset
        elif self._lookback_days is not None:
            params["lookbackWindowDays"] = self._lookback_days
        try:
            response = self._gms.send("GET", POLL_PATH, params=params)
        except GmsAuthError as exc:
            raise GmsAuthError(
                f"GMS refused to serve {self._topic} on its Events API ({exc.status_code}): the "
                "token needs the privilege GET_METADATA_CHANGE_LOG_EVENTS, and GMS must be a "
                "version whose Events API serves MetadataChangeLog topics",
                exc.status_code,
            ) from exc
        try:
            body = response.json()
        except ValueError as exc:
            raise GmsUnavailableError(
                f"GMS's Events API answered {response.status_code} with a body that is not "
                f"JSON: {response.text[:100]!r}"
            ) from exc
        if not isinstance(body, dict) or not isinstance(body.get("events"), list):
            raise GmsUnavailableError(
                f"GMS's Events API answered without an events list: {str(body)[:100]!r}"
            )
        changes, undecodable = [], 0
        for event in body["events"]:
            change = decode_change(event)
            if change is None:
                undecodable += 1
            else:
                changes.append(change)
        next_offset = body.get("offsetId")
        return Batch(changes, next_offset if isinstance(next_offset, str) else offset, undecodable)


def decode_change(event: object) -> dict[str, Any] | None:
    """One event's MetadataChangeLog as plain JSON, None when it is not one.

    DataHub's class reads both plain JSON and Avro's JSON with wrapped unions, and gives
    the aspect's value as bytes; it goes back to text here.
    """
    raw = event.get("value") if isinstance(event, dict) else None
    if not isinstance(raw, str):
        return None
    try:
        change = MetadataChangeLogClass.from_obj(json.loads(raw))
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    decoded: dict[str, Any] = {
        "entityType": change.entityType,
        "entityUrn": change.entityUrn,
        "changeType": change.changeType,
        "aspectName": change.aspectName,
    }
    if change.aspect is not None:
        value = change.aspect.value
        text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
        decoded["aspect"] = {"value": text, "contentType": change.aspect.contentType}
    return decoded
