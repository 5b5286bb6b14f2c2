"""GMS's wire format for the stand-in: its answers, and payload checks done with DataHub's
own generated schema classes.

A stand-in that accepted anything would let a malformed aspect pass the tests and only fail
against a real server, so every payload is decoded with the very classes GMS's schemas are
generated from, and anything those classes would silently drop (unknown fields) is an error.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from datahub.emitter.serialization_helper import post_json_transform
from datahub.metadata.schema_classes import (
    ASPECT_NAME_MAP,
    KEY_ASPECTS,
    AuditStampClass,
    MetadataChangeProposalClass,
    SystemMetadataClass,
)
from datahub.utilities.urns.urn import Urn

JsonDict = dict[str, Any]

RESULT_ASPECT = "dataHubExecutionRequestResult"

# Statuses DataHub's server and UI know for an execution request. GMS itself stores any string;
# the stand-in is stricter so that a typo in our executor cannot go unnoticed.
KNOWN_STATUSES = frozenset(
    {
        "PENDING",
        "RUNNING",
        "SUCCESS",
        "FAILURE",
        "TIMEOUT",
        "CANCELLED",
        "ABORTED",
        "DUPLICATE",
        "UP_FOR_RETRY",
        "SUCCEEDED_WITH_WARNINGS",
        "ROLLING_BACK",
        "ROLLED_BACK",
        "ROLLBACK_FAILED",
    }
)

# GMS's ExecutionRequestResultValidator refuses any update once a result reaches one of these.
IMMUTABLE_STATUSES = frozenset({"SUCCESS", "CANCELLED", "ABORTED", "DUPLICATE"})

# UPSERT only: PATCH needs server-side merge logic and CREATE existence checks that the stand-in
# does not imitate, and a write it cannot imitate faithfully must fail loudly.
_WRITE_CHANGE_TYPES = frozenset({"UPSERT"})
_OPENAPI_ASPECT_KEYS = frozenset({"value", "systemMetadata", "headers"})


class PayloadError(ValueError):
    """A payload GMS would reject as invalid; the message is the reason reported back."""


class Proposal(NamedTuple):
    """One validated aspect write, whichever endpoint it came through."""

    entity_type: str
    urn: str
    aspect_name: str
    value: JsonDict


def qualified_name(aspect_name: str) -> str:
    """The key GMS's Rest.li API wraps an aspect in: the PDL name, without avro's namespace."""
    return qualified_record_name(_aspect_class(aspect_name))


def check_urn(entity_type: str, urn: object) -> str:
    """GMS derives the entity from the urn, so a mismatch with entityType is an error."""
    if entity_type not in KEY_ASPECTS:
        raise PayloadError(f"unknown entity type: {entity_type!r}")
    if not isinstance(urn, str) or not urn.startswith(f"urn:li:{entity_type}:"):
        raise PayloadError(f"urn {urn!r} is not a urn of entity type {entity_type!r}")
    if len(urn) == len(f"urn:li:{entity_type}:"):
        raise PayloadError(f"urn {urn!r} has no key")
    return urn


def check_aspect(aspect_name: str, value: object) -> JsonDict:
    """Validates one aspect value in its wire (Rest.li JSON) form and returns it."""
    record = check_record(_aspect_class(aspect_name), value, aspect_name)
    if aspect_name == RESULT_ASPECT and record["status"] not in KNOWN_STATUSES:
        raise PayloadError(f"{aspect_name}: unknown status {record['status']!r}")
    return record


def check_record(cls: Any, obj: object, what: str) -> JsonDict:
    """Decodes obj with a schema class and fails on anything the class would not keep.

    The generated classes ignore unknown fields when decoding, whereas GMS refuses them, so
    the decoded record is re-encoded and compared key by key with what was sent.
    """
    if not isinstance(obj, dict):
        raise PayloadError(f"{what}: expected a JSON object, got {type(obj).__name__}")
    unknown = sorted(set(obj) - set(cls.RECORD_SCHEMA.fields_dict))
    if unknown:
        raise PayloadError(f"{what}: unrecognized field(s) {', '.join(unknown)}")
    given = post_json_transform(obj)
    try:
        record = cls.from_obj(given)
        valid = record.validate()
    except Exception as exc:  # the generated decoder raises a variety of exception types
        raise PayloadError(f"{what}: cannot be decoded: {exc}") from exc
    if not valid:
        raise PayloadError(f"{what}: does not conform to {qualified_record_name(cls)}")
    nested = _unknown_paths(given, record.to_obj(), "")
    if nested:
        raise PayloadError(f"{what}: unrecognized field(s) {', '.join(nested)}")
    return obj


def qualified_record_name(cls: Any) -> str:
    """Rest.li name of any generated record class, for messages."""
    full_name: str = cls.RECORD_SCHEMA.fullname
    return full_name.replace(".pegasus2avro", "")


def parse_proposal(proposal: object) -> Proposal:
    """Validates a Rest.li ingestProposal envelope and the aspect it carries."""
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


def parse_json(content_type: str | None, body: bytes) -> object:
    """GMS only takes JSON, and says so when the content type is wrong."""
    if not (content_type or "").startswith("application/json"):
        raise PayloadError("Content-Type must be application/json")
    try:
        return json.loads(body)
    except ValueError as exc:
        raise PayloadError(f"request body is not JSON: {exc}") from exc


def parse_restli(
    content_type: str | None, protocol: str | None, body: bytes, key: str
) -> list[Proposal]:
    """The body of both Rest.li actions: {"proposal": {...}} or {"proposals": [...]}."""
    if protocol != "2.0.0":
        raise PayloadError("X-RestLi-Protocol-Version: 2.0.0 header is required")
    payload = parse_json(content_type, body)
    if not isinstance(payload, dict) or key not in payload:
        raise PayloadError(f"request body must be a JSON object with {key!r}")
    extra = sorted(set(payload) - {key, "async"})
    if extra:
        raise PayloadError(f"unrecognized parameter(s) {', '.join(extra)}")
    if payload.get("async", "false") not in ("true", "false"):
        raise PayloadError('"async" must be the string "true" or "false"')
    if key == "proposal":
        return [parse_proposal(payload[key])]
    if not isinstance(payload[key], list) or not payload[key]:
        raise PayloadError("proposals must be a non-empty list")
    return [parse_proposal(proposal) for proposal in payload[key]]


def parse_openapi_entities(entity_type: str, body: object) -> list[Proposal]:
    """Validates an OpenAPI v3 entity upsert: a list of {urn, <aspect>: {value, ...}}."""
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
    return proposals


def parse_batch_get(body: object) -> list[tuple[str, set[str]]]:
    """OpenAPI v3 batchGet: [{"urn": ..., "<aspect>": {}}], no aspect meaning all of them."""
    if not isinstance(body, list) or not all(
        isinstance(item, dict) and isinstance(item.get("urn"), str) for item in body
    ):
        raise PayloadError("batchGet: expected a JSON list of {urn, <aspect>: {}}")
    return [(item["urn"], set(item) - {"urn"}) for item in body]


def parse_restli_list(values: list[str] | None, protocol: str | None) -> set[str] | None:
    """Rest.li 2.0's array syntax in a query string, ``List(a,b)``; None when it is absent.

    Rest.li 1.0 would read ``List(a,b)`` as one string, hence the protocol header check.
    """
    if values is None:
        return None
    if protocol != "2.0.0":
        raise PayloadError("X-RestLi-Protocol-Version: 2.0.0 header is required")
    if len(values) != 1 or not (values[0].startswith("List(") and values[0].endswith(")")):
        raise PayloadError(f"aspects must be given once, as List(<name>,...), got {values!r}")
    names = {name for name in values[0][len("List(") : -1].split(",") if name}
    for name in names:
        _aspect_class(name)
    return names


def key_aspect(urn: str) -> tuple[str, JsonDict]:
    """The key aspect GMS derives from a urn (EntityKeyUtils.convertUrnToEntityKey)."""
    try:
        # Urn.from_string returns the entity's own urn class, which alone has the method.
        parsed: Any = Urn.from_string(urn)
        key = parsed.to_key_aspect()
    except Exception as exc:  # InvalidUrnError, or a urn type without a key class
        raise PayloadError(f"no key aspect can be derived from {urn!r}: {exc}") from exc
    return key.ASPECT_NAME, json.loads(json.dumps(key.to_obj()))


def enveloped_aspect(aspect_name: str, value: JsonDict, created: JsonDict) -> JsonDict:
    """One EnvelopedAspect of an EntityResponse (com/linkedin/entity/EnvelopedAspect.pdl).

    What is served is checked like what is received: value and audit stamp with DataHub's
    classes. systemMetadata is optional in the PDL and left out.
    """
    return {
        "name": aspect_name,
        "type": "VERSIONED",
        "version": 0,
        "value": check_aspect(aspect_name, value),
        "created": check_record(AuditStampClass, created, f"{aspect_name}.created"),
    }


def parse_timeseries_query(body: object) -> tuple[str, str, object]:
    """getTimeseriesAspectValues: the urn, aspect and limit; filters are not imitated."""
    if not isinstance(body, dict) or not isinstance(body.get("urn"), str):
        raise PayloadError("getTimeseriesAspectValues: expected a JSON object with a urn")
    return body["urn"], str(body.get("aspect")), body.get("limit")


def refusal(previous: JsonDict | None, proposal: Proposal) -> str | None:
    """GMS's ExecutionRequestResultValidator: a finished request's result is immutable."""
    if proposal.aspect_name != RESULT_ASPECT or previous is None:
        return None
    if previous.get("status") not in IMMUTABLE_STATUSES:
        return None
    return (
        f"Invalid update to immutable state for aspect {RESULT_ASPECT}. Execution urn:"
        f" {proposal.urn} previous status: {previous['status']}. Denied status update:"
        f" {proposal.value.get('status')}"
    )


def _openapi_aspect_value(aspect_name: str, wrapper: object) -> JsonDict:
    if not isinstance(wrapper, dict) or "value" not in wrapper:
        raise PayloadError(f"openapi: {aspect_name} must be an object with a value")
    extra = sorted(set(wrapper) - _OPENAPI_ASPECT_KEYS)
    if extra:
        raise PayloadError(f"openapi: {aspect_name}: unrecognized field(s) {', '.join(extra)}")
    if wrapper.get("systemMetadata") is not None:
        check_record(SystemMetadataClass, wrapper["systemMetadata"], "systemMetadata")
    return check_aspect(aspect_name, wrapper["value"])


def _aspect_class(aspect_name: str) -> Any:
    cls = ASPECT_NAME_MAP.get(aspect_name)
    if cls is None:
        raise PayloadError(f"unknown aspect: {aspect_name!r}")
    return cls


def _unknown_paths(given: object, kept: object, path: str) -> list[str]:
    """Paths present in what was sent but absent after a decode/encode round trip."""
    if isinstance(given, dict) and isinstance(kept, dict):
        found = []
        for key, value in given.items():
            if key not in kept:
                found.append(f"{path}{key}")
            else:
                found.extend(_unknown_paths(value, kept[key], f"{path}{key}."))
        return found
    if isinstance(given, list) and isinstance(kept, list):
        return [
            found
            for index, (item, kept_item) in enumerate(zip(given, kept, strict=False))
            for found in _unknown_paths(item, kept_item, f"{path}{index}.")
        ]
    return []


# What GMS v1.2.0 answers on /config. The datahub CLI requires noCode == "true" (a string). The
# sink passes openapi_ingestion explicitly and its graph runs in INGESTION client mode, so the
# version alone does not switch them to OpenAPI; only DATAHUB_REST_EMITTER_DEFAULT_ENDPOINT or an
# SDK-mode emitter does, and that endpoint is served too. statefulIngestionCapable is true so a
# recipe with a pipeline_name (which turns stateful ingestion on by default) still runs, and CLI
# telemetry is off so that the sandbox never phones home.
SERVER_CONFIG: JsonDict = {
    "models": {},
    "patchCapable": True,
    "versions": {"acryldata/datahub": {"version": "v1.2.0", "commit": "0" * 40}},
    "managedIngestion": {"defaultCliVersion": "1.2.0", "enabled": True},
    "statefulIngestionCapable": True,
    "supportsImpactAnalysis": False,
    "timeZone": "GMT",
    "telemetry": {"enabledCli": False, "enabledIngestion": False},
    "datasetUrnNameCasing": False,
    "retention": "true",
    "datahub": {"serverType": "dev", "serverEnv": "core"},
    "noCode": "true",
}

# GMS's authentication filter answers with this message; the stand-in keeps it but in JSON.
UNAUTHORIZED = "Unauthorized to perform this action."


def error_body(status: int, message: str) -> JsonDict:
    """Rest.li's error shape, trimmed: the CLI shows "message" to the user."""
    return {"message": message, "status": status}


def openapi_answer(proposals: list[Proposal]) -> list[JsonDict]:
    """OpenAPI v3 echoes each entity with the aspects written, in request order."""
    entities: dict[str, JsonDict] = {}
    for proposal in proposals:
        entity = entities.setdefault(proposal.urn, {"urn": proposal.urn})
        entity[proposal.aspect_name] = {"value": proposal.value}
    return list(entities.values())
