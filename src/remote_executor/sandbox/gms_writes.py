"""The GMS stand-in's write endpoints: Rest.li ingestProposal(Batch) and the OpenAPI v3 upsert.

Each validates every proposal it carries, then stores all of them or none: a request GMS
would not understand raises PayloadError (400), a valid write GMS would still deny is 422.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from datahub.metadata.schema_classes import MetadataChangeProposalClass, SystemMetadataClass

from remote_executor.sandbox.gms_schema import (
    Answer,
    JsonDict,
    PayloadError,
    Proposal,
    check_aspect,
    check_record,
    check_restli_2,
    check_urn,
    error_body,
    request_json,
)
from remote_executor.sandbox.gms_store import AspectStore
from remote_executor.sandbox.loopback import Request

# UPSERT only: PATCH needs server-side merge logic and CREATE existence checks that the stand-in
# does not imitate, and a write it cannot imitate faithfully must fail loudly.
_WRITE_CHANGE_TYPES = frozenset({"UPSERT"})
_OPENAPI_ASPECT_KEYS = frozenset({"value", "systemMetadata", "headers"})


def ingest_proposal(store: AspectStore, request: Request) -> Answer:
    """POST /aspects?action=ingestProposal, {"proposal": {...}}; answers the urn written."""
    return _write(store, _restli(request, "proposal"), lambda done: {"value": done[0].urn})


def ingest_proposal_batch(store: AspectStore, request: Request) -> Answer:
    """POST /aspects?action=ingestProposalBatch, {"proposals": [...]}; answers their urns."""
    proposals = _restli(request, "proposals")
    return _write(store, proposals, lambda done: {"value": [p.urn for p in done]})


def upsert_entities(store: AspectStore, entity_type: str, request: Request) -> Answer:
    """POST /openapi/v3/entity/<type>: a list of {urn, <aspect>: {value, ...}}.

    OpenAPI v3 echoes each entity with the aspects written, in request order.
    """
    body = request_json(request)
    if not isinstance(body, list) or not body:
        raise PayloadError("openapi: expected a non-empty JSON list of entities")
    proposals = []
    for item in body:
        if not isinstance(item, dict):
            raise PayloadError("openapi: every entity must be a JSON object")
        urn = check_urn(entity_type, item.get("urn"))
        for aspect_name, wrapper in item.items():
            if aspect_name != "urn":
                value = _openapi_aspect_value(aspect_name, wrapper)
                proposals.append(Proposal(entity_type, urn, aspect_name, value))
    return _write(store, proposals, _openapi_echo)


def _write(
    store: AspectStore, proposals: list[Proposal], answer: Callable[[list[Proposal]], Any]
) -> Answer:
    refusal = store.write_all(proposals)
    if refusal is not None:
        return 422, error_body(422, refusal)
    return 200, answer(proposals)


def _restli(request: Request, key: str) -> list[Proposal]:
    """The body of both Rest.li actions: {"proposal": {...}} or {"proposals": [...]}."""
    check_restli_2(request)
    payload = request_json(request)
    if not isinstance(payload, dict) or key not in payload:
        raise PayloadError(f"request body must be a JSON object with {key!r}")
    extra = sorted(set(payload) - {key, "async"})
    if extra:
        raise PayloadError(f"unrecognized parameter(s) {', '.join(extra)}")
    if payload.get("async", "false") not in ("true", "false"):
        raise PayloadError('"async" must be the string "true" or "false"')
    if key == "proposal":
        return [_proposal(payload[key])]
    if not isinstance(payload[key], list) or not payload[key]:
        raise PayloadError("proposals must be a non-empty list")
    return [_proposal(proposal) for proposal in payload[key]]


def _proposal(proposal: object) -> Proposal:
    """Validates a Rest.li MetadataChangeProposal envelope and the aspect it carries."""
    envelope = check_record(MetadataChangeProposalClass, proposal, "proposal")
    if envelope.get("changeType") not in _WRITE_CHANGE_TYPES:
        raise PayloadError(
            f"proposal: changeType {envelope.get('changeType')!r} is not supported by the stand-in"
        )
    entity_type = envelope["entityType"]
    urn = check_urn(entity_type, envelope.get("entityUrn"))
    aspect_name = envelope.get("aspectName")
    aspect = envelope.get("aspect")
    if not isinstance(aspect_name, str) or not isinstance(aspect, dict):
        raise PayloadError("proposal: aspectName and aspect are required")
    if aspect.get("contentType") != "application/json":
        raise PayloadError(f"proposal: unsupported contentType {aspect.get('contentType')!r}")
    try:
        value = json.loads(aspect["value"])
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"proposal: aspect value is not JSON: {exc}") from exc
    return Proposal(entity_type, urn, aspect_name, check_aspect(aspect_name, value))


def _openapi_aspect_value(aspect_name: str, wrapper: object) -> JsonDict:
    if not isinstance(wrapper, dict) or "value" not in wrapper:
        raise PayloadError(f"openapi: {aspect_name} must be an object with a value")
    extra = sorted(set(wrapper) - _OPENAPI_ASPECT_KEYS)
    if extra:
        raise PayloadError(f"openapi: {aspect_name}: unrecognized field(s) {', '.join(extra)}")
    if wrapper.get("systemMetadata") is not None:
        check_record(SystemMetadataClass, wrapper["systemMetadata"], "systemMetadata")
    return check_aspect(aspect_name, wrapper["value"])


def _openapi_echo(proposals: list[Proposal]) -> list[JsonDict]:
    entities: dict[str, JsonDict] = {}
    for proposal in proposals:
        entity = entities.setdefault(proposal.urn, {"urn": proposal.urn})
        entity[proposal.aspect_name] = {"value": proposal.value}
    return list(entities.values())
