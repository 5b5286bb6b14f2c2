"""The GMS stand-in's read endpoints, answered from an AspectStore.

GET /aspects and GET /entitiesV2 are what our executor reads; OpenAPI batchGet and
getTimeseriesAspectValues are what the ``datahub`` CLI reads during ingestion. A request GMS
would not understand raises PayloadError, which the stand-in answers with 400.
"""

from __future__ import annotations

import json
import time

from remote_executor.sandbox.gms_schema import (
    Answer,
    JsonDict,
    PayloadError,
    check_aspect_name,
    check_restli_2,
    check_urn,
    entity_type_of,
    enveloped_aspect,
    error_body,
    key_aspect,
    qualified_name,
    request_json,
)
from remote_executor.sandbox.gms_store import AspectStore
from remote_executor.sandbox.loopback import Request

# Who GMS says created an aspect: the key aspect it derives is its own; a stored aspect's is
# the writer's, which the stand-in's tokens do not name, so DataHub's default admin.
_SYSTEM_ACTOR = "urn:li:corpuser:__datahub_system"
_WRITER = "urn:li:corpuser:datahub"


def get_aspect(store: AspectStore, urn: str, request: Request) -> Answer:
    """Rest.li GET /aspects/{urn}?aspect=<name>&version=0: one aspect, or 404."""
    aspect_name = request.query.get("aspect", [""])[0]
    version = request.query.get("version", ["0"])[0]
    value = store.get(urn, aspect_name) if version == "0" else None
    if value is None:
        return 404, error_body(404, f"aspect {aspect_name} of {urn} (version {version}) not found")
    return 200, {"urn": urn, "version": 0, "aspect": {qualified_name(aspect_name): value}}


def get_entity(store: AspectStore, urn: str, request: Request) -> Answer:
    """Rest.li GET /entitiesV2/{urn}?aspects=List(...), an EntityResponse.

    As in GMS, never a 404: an aspect GMS does not have is left out, and the key aspect is
    always there, derived from the urn when it was never written, so an entity GMS never
    heard of answers 200 with its key aspect alone. Sources, in datahub-project/datahub:
    metadata-service/restli-servlet-impl/src/main/java/com/linkedin/metadata/resources/
    entity/EntityV2Resource.java (get: no aspects means all; alwaysIncludeKeyAspect
    defaults to true), metadata-io/src/main/java/com/linkedin/metadata/entity/
    EntityServiceImpl.java (getCorrespondingAspects: every urn asked for gets an entry,
    with the key aspect from EntityUtils.getKeyEnvelopedAspect), and
    metadata-models/src/main/pegasus/com/linkedin/entity/EntityResponse.pdl and
    EnvelopedAspect.pdl (the shape).
    """
    entity_type = entity_type_of(urn)
    check_urn(entity_type, urn)
    wanted = restli_aspects(request)
    key_name, key_value = key_aspect(urn)
    aspects = {
        name: enveloped_aspect(name, stored.value, {"actor": _WRITER, "time": stored.written_ms})
        for name, stored in store.of(urn, wanted).items()
    }
    if key_name not in aspects:
        created = {"actor": _SYSTEM_ACTOR, "time": int(time.time() * 1000)}
        aspects[key_name] = enveloped_aspect(key_name, key_value, created)
    return 200, {"entityName": entity_type, "urn": urn, "aspects": aspects}


def batch_get(store: AspectStore, request: Request) -> Answer:
    """OpenAPI v3 batchGet: the CLI's SQL parser looks up schemaMetadata of tables a view reads.

    The body is [{"urn": ..., "<aspect>": {}}], no aspect meaning all of them; an entity with
    none of the aspects asked for is left out.
    """
    body = request_json(request)
    if not isinstance(body, list) or not all(
        isinstance(item, dict) and isinstance(item.get("urn"), str) for item in body
    ):
        raise PayloadError("batchGet: expected a JSON list of {urn, <aspect>: {}}")
    found = []
    for item in body:
        aspects = store.of(item["urn"], set(item) - {"urn"} or None)
        if aspects:
            entity: JsonDict = {"urn": item["urn"]}
            entity.update({name: {"value": stored.value} for name, stored in aspects.items()})
            found.append(entity)
    return 200, found


def timeseries_values(store: AspectStore, request: Request) -> Answer:
    """getTimeseriesAspectValues: the latest stored value only, filters not imitated.

    Enough for the CLI's stateful-ingestion checkpoint lookup.
    """
    body = request_json(request)
    if not isinstance(body, dict) or not isinstance(body.get("urn"), str):
        raise PayloadError("getTimeseriesAspectValues: expected a JSON object with a urn")
    value = store.get(body["urn"], str(body.get("aspect")))
    aspect = {"value": json.dumps(value), "contentType": "application/json"}
    found = [] if value is None else [{"aspect": aspect}]
    return 200, {"value": {"limit": body.get("limit"), "values": found}}


def restli_aspects(request: Request) -> set[str] | None:
    """The aspects an /entitiesV2 read asks for, in Rest.li 2.0's ``?aspects=List(a,b)``.

    None when the parameter is absent, which GMS reads as all of them.
    """
    values = request.query.get("aspects")
    if values is None:
        return None
    check_restli_2(request)  # Rest.li 1.0 would read List(a,b) as one name
    if len(values) != 1 or not (values[0].startswith("List(") and values[0].endswith(")")):
        raise PayloadError(f"aspects must be given once, as List(<name>,...), got {values!r}")
    return {check_aspect_name(name) for name in values[0][len("List(") : -1].split(",") if name}
