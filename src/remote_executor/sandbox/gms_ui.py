"""What DataHub's UI and scheduler write to GMS, written to the stand-in the same way.

Each function imitates one of GMS's writers, checked in datahub-project/datahub:
- ``execute`` is CreateIngestionExecutionRequestResolver (the UI's Execute button): it reads
  the source's dataHubIngestionSourceInfo, injects ``run_id`` (the request urn) and
  ``pipeline_name`` (the source urn) into the recipe, puts the recipe, the version (the
  source's, else GMS's default CLI version), the source's extraArgs and ``debug_mode`` in
  ``args``, copies the source's executorId (left unset when the source has none, which
  GMS then refuses: the field is required, and the UI always stores one, "default" at
  least), and writes the input with the actor, as source type MANUAL_INGESTION_SOURCE;
- ``scheduled`` is GMS's ingestion scheduler on the source's cron: the same input as source
  type SCHEDULED_INGESTION_SOURCE, with only ``pipeline_name`` injected and no actor;
- ``test_connection`` is CreateTestConnectionRequestResolver: source type
  TEST_CONNECTION_SOURCE and executorId ``default``, always;
- ``cancel`` is CancelIngestionExecutionRequestResolver: a KILL signal with the source's
  executorId.
Every write goes through the stand-in's write path, so it is logged as a MetadataChangeLog.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import TYPE_CHECKING, Any

from remote_executor.messages import INPUT_ASPECT
from remote_executor.models import URN_PREFIX

if TYPE_CHECKING:
    from remote_executor.sandbox.gms import GmsStandIn

SOURCE_INFO_ASPECT = "dataHubIngestionSourceInfo"
SIGNAL_ASPECT = "dataHubExecutionRequestSignal"
# GMS's managedIngestion.defaultCliVersion when a source names no version.
DEFAULT_CLI_VERSION = "native"
UI_ACTOR = "urn:li:corpuser:datahub"
_SOURCE_PREFIX = "urn:li:dataHubIngestionSource:"


def create_source(
    gms: GmsStandIn,
    source_id: str,
    recipe: dict[str, Any],
    *,
    name: str | None = None,
    executor_id: str | None = "remote",
    version: str | None = None,
    extra_args: dict[str, str] | None = None,
    schedule: str | None = None,
) -> str:
    """An ingestion source as the UI's "Create source" stores it; returns its urn."""
    config: dict[str, Any] = {"recipe": json.dumps(recipe), "debugMode": False}
    if version is not None:
        config["version"] = version
    if executor_id is not None:
        config["executorId"] = executor_id
    if extra_args:
        config["extraArgs"] = dict(extra_args)
    info: dict[str, Any] = {
        "name": name or source_id,
        "type": str(recipe.get("source", {}).get("type", "unknown")),
        "config": config,
    }
    if schedule is not None:
        info["schedule"] = {"interval": schedule, "timezone": "UTC"}
    urn = f"{_SOURCE_PREFIX}{source_id}"
    gms.propose(urn, SOURCE_INFO_ASPECT, info)
    return urn


def execute(gms: GmsStandIn, source_urn: str, actor: str = UI_ACTOR) -> str:
    """The UI's Execute on source_urn; returns the new request's urn."""
    return _request(gms, source_urn, "MANUAL_INGESTION_SOURCE", actor)


def scheduled(gms: GmsStandIn, source_urn: str) -> str:
    """The scheduler's run of source_urn; returns the new request's urn."""
    return _request(gms, source_urn, "SCHEDULED_INGESTION_SOURCE", None)


def test_connection(gms: GmsStandIn, recipe: dict[str, Any], actor: str = UI_ACTOR) -> str:
    """The UI's Test Connection of an unsaved recipe; returns the request's urn."""
    urn = f"{URN_PREFIX}{uuid.uuid4()}"
    value = {
        "task": "TEST_CONNECTION",
        "args": {"recipe": json.dumps({**recipe, "pipeline_name": urn}), "version": "native"},
        "executorId": "default",
        "source": {"type": "TEST_CONNECTION_SOURCE"},
        "requestedAt": _now_ms(),
        "actorUrn": actor,
    }
    gms.propose(urn, INPUT_ASPECT, value)
    return urn


def cancel(gms: GmsStandIn, request_urn: str, source_urn: str, actor: str = UI_ACTOR) -> None:
    """The UI's Cancel on a running request of source_urn: a KILL signal."""
    signal: dict[str, Any] = {"signal": "KILL", "createdAt": {"time": _now_ms(), "actor": actor}}
    executor_id = _source_config(gms, source_urn).get("executorId")
    if executor_id:
        signal["executorId"] = executor_id
    gms.propose(request_urn, SIGNAL_ASPECT, signal)


def _request(gms: GmsStandIn, source_urn: str, source_type: str, actor: str | None) -> str:
    config = _source_config(gms, source_urn)
    urn = f"{URN_PREFIX}{uuid.uuid4()}"
    recipe = json.loads(config["recipe"])
    recipe["pipeline_name"] = source_urn
    if source_type == "MANUAL_INGESTION_SOURCE":
        recipe["run_id"] = urn
    args: dict[str, str] = {
        "recipe": json.dumps(recipe),
        "version": config.get("version") or DEFAULT_CLI_VERSION,
    }
    args.update(config.get("extraArgs") or {})
    args["debug_mode"] = "true" if config.get("debugMode") else "false"
    value: dict[str, Any] = {"task": "RUN_INGEST", "args": args}
    if config.get("executorId"):
        value["executorId"] = config["executorId"]
    value["source"] = {"type": source_type, "ingestionSource": source_urn}
    value["requestedAt"] = _now_ms()
    if actor is not None:
        value["actorUrn"] = actor
    gms.propose(urn, INPUT_ASPECT, value)
    return urn


def _source_config(gms: GmsStandIn, source_urn: str) -> dict[str, Any]:
    info = gms.aspect(source_urn, SOURCE_INFO_ASPECT)
    if info is None:
        raise LookupError(f"no ingestion source {source_urn} in the stand-in")
    config: dict[str, Any] = info["config"]
    return config


def _now_ms() -> int:
    return int(time.time() * 1000)
