"""Where the bridge keeps how far it read: in GMS, next to what it reads.

The offset is stored as datahub-actions' ``datahub-cloud`` source stores its own: a
``platformResourceInfo`` aspect (resourceType ``eventConsumerState``, primary key the
consumer id, a JSON blob ``{"offset_id": ..., "timestamp": ...}``) on a platformResource
whose id is DataHub's guid of the platform, the consumer id and "state". Kept in GMS, it
survives a restart, a rescheduled pod and a new node with no volume to carry, and every
replica with the same consumer id reads the one offset, so a replacement continues where
the last commit left off. It is committed after each batch is queued, never before: a crash
in between replays the batch (at least once), and the worker runs a request only once.
"""

from __future__ import annotations

import json
import time

from datahub.emitter.mce_builder import datahub_guid, make_data_platform_urn

from remote_executor.gms import GmsClient

STATE_ASPECT = "platformResourceInfo"
_SCHEMA_REF = "EventConsumerState@1"


def state_urn(consumer_id: str) -> str:
    """The platformResource holding consumer_id's offset."""
    key = {
        "platform": make_data_platform_urn("datahub"),
        "consumer_id": consumer_id,
        "state_resource_name": "state",
    }
    return f"urn:li:platformResource:{datahub_guid(key)}"


class GmsOffsets:
    """Load and commit one consumer's offset (GmsError when GMS cannot)."""

    def __init__(self, gms: GmsClient, consumer_id: str) -> None:
        self.consumer_id = consumer_id
        self.urn = state_urn(consumer_id)
        self._gms = gms

    def load(self) -> str | None:
        info = self._gms.read_aspect(self.urn, STATE_ASPECT)
        blob = (info or {}).get("value", {}).get("blob")
        if not isinstance(blob, str):
            return None
        try:
            state = json.loads(blob)
        except ValueError:
            return None
        offset = state.get("offset_id") if isinstance(state, dict) else None
        return offset if isinstance(offset, str) else None

    def commit(self, offset: str) -> None:
        blob = json.dumps({"offset_id": offset, "timestamp": int(time.time())})
        value = {
            "resourceType": "eventConsumerState",
            "primaryKey": self.consumer_id,
            "value": {
                "blob": blob,
                "contentType": "JSON",
                "schemaType": "JSON",
                "schemaRef": _SCHEMA_REF,
            },
        }
        self._gms.write_aspect(self.urn, STATE_ASPECT, value)
