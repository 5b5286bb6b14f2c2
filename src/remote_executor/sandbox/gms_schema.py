"""GMS's wire format for the stand-in: aspects checked with DataHub's own generated schema
classes, and the shapes of GMS's answers.

A stand-in that accepted anything would let a malformed aspect pass the tests and only fail
against a real server, so every aspect is decoded with the very classes GMS's schemas are
generated from, and anything those classes would silently drop (unknown fields) is an error.
How each endpoint's envelope is read lives with the endpoint, in gms_reads and gms_writes.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from datahub.emitter.serialization_helper import post_json_transform
from datahub.metadata.schema_classes import ASPECT_NAME_MAP, KEY_ASPECTS, AuditStampClass
from datahub.utilities.urns.urn import Urn

from remote_executor.sandbox.loopback import Request

JsonDict = dict[str, Any]
# (HTTP status, JSON body) of one API call, before it is encoded
Answer = tuple[int, Any]

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


def check_aspect_name(aspect_name: str) -> str:
    """An aspect DataHub's schema knows, or PayloadError."""
    _aspect_class(aspect_name)
    return aspect_name


def entity_type_of(urn: str) -> str:
    """``urn:li:<entity type>:<key>``'s entity type; "" when urn has no such shape."""
    return urn.split(":")[2] if urn.count(":") >= 3 else ""


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


def request_json(request: Request) -> object:
    """GMS only takes JSON, and says so when the content type is wrong."""
    if not (request.headers.get("Content-Type") or "").startswith("application/json"):
        raise PayloadError("Content-Type must be application/json")
    try:
        return json.loads(request.body)
    except ValueError as exc:
        raise PayloadError(f"request body is not JSON: {exc}") from exc


def check_restli_2(request: Request) -> None:
    """Rest.li 1.0 reads bodies and ``List(a,b)`` differently; our clients all send 2.0.0."""
    if request.headers.get("X-RestLi-Protocol-Version") != "2.0.0":
        raise PayloadError("X-RestLi-Protocol-Version: 2.0.0 header is required")


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
    classes. systemMetadata is optional in the PDL and left out. A failed check is the
    stand-in's own bug, not the client's, hence a RuntimeError (a 500), not a PayloadError.
    """
    try:
        checked = check_aspect(aspect_name, value)
        stamp = check_record(AuditStampClass, created, f"{aspect_name}.created")
    except PayloadError as exc:
        raise RuntimeError(f"the stand-in would serve what GMS would not: {exc}") from exc
    return {
        "name": aspect_name,
        "type": "VERSIONED",
        "version": 0,
        "value": checked,
        "created": stamp,
    }


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
