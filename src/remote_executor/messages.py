"""The SQS message contract of DESIGN.md: a MetadataChangeLog for the request's input.

Decoding happens in two steps because a producer may truncate: the envelope
names the request urn (so even a broken message can be reported against it),
and the input aspect, read from the message or from GMS, becomes the request.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from remote_executor.errors import MalformedMessageError, MessageError, UnknownTaskError
from remote_executor.models import URN_PREFIX, ExecutionRequest, TaskKind, request_urn

ENTITY_TYPE = "dataHubExecutionRequest"
INPUT_ASPECT = "dataHubExecutionRequestInput"
TRUNCATED_ASPECT = "EXECUTOR_SQS_TRUNCATED"


@dataclass(frozen=True)
class Envelope:
    """The outer message: whose request it is, and its input unless truncated."""

    urn: str
    input: dict[str, Any] | None

    @property
    def request_id(self) -> str:
        """The id part of the urn."""
        return self.urn[len(URN_PREFIX) :]


def parse_envelope(body: str) -> Envelope:
    """Read the outer message; raise MalformedMessageError saying what is wrong."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise MalformedMessageError(f"message body is not JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise MalformedMessageError(
            f"message body is JSON but not an object (got {type(data).__name__})"
        )
    urn = data.get("entityUrn")
    if not isinstance(urn, str) or not urn.startswith(URN_PREFIX) or urn == URN_PREFIX:
        raise MalformedMessageError(
            f"message has no execution request urn: entityUrn must start with {URN_PREFIX}"
        )
    aspect_name = data.get("aspectName")
    if aspect_name == TRUNCATED_ASPECT:
        return Envelope(urn=urn, input=None)
    if aspect_name != INPUT_ASPECT:
        raise MalformedMessageError(
            f"message aspectName is {aspect_name!r}, expected {INPUT_ASPECT!r} "
            f"or {TRUNCATED_ASPECT!r}",
            urn,
        )
    aspect = data.get("aspect")
    value = aspect.get("value") if isinstance(aspect, dict) else None
    if not isinstance(value, str):
        raise MalformedMessageError("message aspect.value must be a JSON string", urn)
    try:
        decoded = json.loads(value)
    except (ValueError, RecursionError) as exc:
        raise MalformedMessageError(f"message aspect.value is not JSON ({exc})", urn) from exc
    if not isinstance(decoded, dict):
        raise MalformedMessageError("message aspect.value must encode a JSON object", urn)
    return Envelope(urn=urn, input=decoded)


def urn_of(body: str) -> str | None:
    """The request urn a message names, or None when it names none."""
    try:
        return parse_envelope(body).urn
    except MessageError as exc:
        return exc.urn


def _json_arg(args: dict[str, Any], name: str, kind: type, urn: str) -> Any:
    raw = args.get(name)
    if raw in (None, ""):
        return kind()
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except (ValueError, RecursionError) as exc:
        raise MalformedMessageError(f"args.{name} is not valid JSON ({exc})", urn) from exc
    if not isinstance(value, kind):
        raise MalformedMessageError(f"args.{name} must encode a JSON {kind.__name__}", urn)
    return value


def _timeout_arg(args: dict[str, Any], urn: str) -> float | None:
    raw = args.get("timeout_seconds")
    if raw in (None, ""):
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise MalformedMessageError(
            f"args.timeout_seconds must be a positive number of seconds, not {raw!r}", urn
        )
    return value


def parse_input(urn: str, value: dict[str, Any]) -> ExecutionRequest:
    """Turn an ExecutionRequestInput value into a request, or say what is wrong."""
    task_name = value.get("task")
    try:
        task = TaskKind(task_name)
    except ValueError:
        known = " and ".join(kind.value for kind in TaskKind)
        raise UnknownTaskError(
            f"unknown task {task_name!r}: this executor runs {known}", urn
        ) from None
    executor_id = value.get("executorId")
    if not isinstance(executor_id, str) or not executor_id:
        raise MalformedMessageError("request input has no executorId", urn)
    args = value.get("args")
    if not isinstance(args, dict):
        raise MalformedMessageError("request input has no args map", urn)
    recipe = args.get("recipe")
    if not isinstance(recipe, str) or not recipe.strip():
        raise MalformedMessageError("request args have no recipe", urn)
    env = _json_arg(args, "extra_env_vars", dict, urn)
    source = value.get("source")
    source = source if isinstance(source, dict) else {}
    try:
        return _request(urn, task, executor_id, recipe, value, args, env, source)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise MalformedMessageError(f"request input is not valid: {problems}", urn) from exc


def _request(  # noqa: PLR0917
    urn: str,
    task: TaskKind,
    executor_id: str,
    recipe: str,
    value: dict[str, Any],
    args: dict[str, Any],
    env: dict[str, Any],
    source: dict[str, Any],
) -> ExecutionRequest:
    return ExecutionRequest(
        request_id=urn[len(URN_PREFIX) :],
        task=task,
        executor_id=executor_id,
        recipe=recipe,
        requested_at_ms=value.get("requestedAt")
        if isinstance(value.get("requestedAt"), int)
        else None,
        ingestion_source=source.get("ingestionSource"),
        cli_version=args.get("version") or None,
        debug_mode=str(args.get("debug_mode", "false")).lower() == "true",
        extra_env_vars={str(k): str(v) for k, v in env.items()},
        extra_pip_requirements=[
            str(r) for r in _json_arg(args, "extra_pip_requirements", list, urn)
        ],
        extra_pip_plugins=[str(p) for p in _json_arg(args, "extra_pip_plugins", list, urn)],
        timeout_seconds=_timeout_arg(args, urn),
    )


def build_message(request_id: str, recipe: str, executor_id: str, **fields: Any) -> str:
    """The SQS body for a request, exactly as DESIGN.md draws it; ``fields`` are
    ``request_input``'s."""
    return message_for(request_urn(request_id), request_input(recipe, executor_id, **fields))


def request_input(
    recipe: str,
    executor_id: str,
    *,
    task: TaskKind = TaskKind.RUN_INGEST,
    ingestion_source: str | None = None,
    extra_env_vars: dict[str, str] | None = None,
    timeout_seconds: float | None = None,
    version: str = "native",
    extra_pip_requirements: list[str] | None = None,
    extra_pip_plugins: list[str] | None = None,
    actor_urn: str | None = None,
) -> dict[str, Any]:
    """A request's dataHubExecutionRequestInput value, what a producer writes to GMS."""
    input_value: dict[str, Any] = {
        "task": task.value,
        "executorId": executor_id,
        "requestedAt": int(time.time() * 1000),
        "args": {
            "recipe": recipe,
            "version": version,
            "debug_mode": "false",
            "extra_env_vars": json.dumps(extra_env_vars or {}),
            "extra_pip_requirements": json.dumps(extra_pip_requirements or []),
        },
        "source": {"type": "MANUAL_INGESTION_SOURCE"},
    }
    if ingestion_source:
        input_value["source"]["ingestionSource"] = ingestion_source
    if timeout_seconds is not None:
        input_value["args"]["timeout_seconds"] = str(timeout_seconds)
    if extra_pip_plugins:
        input_value["args"]["extra_pip_plugins"] = json.dumps(extra_pip_plugins)
    if actor_urn:
        input_value["actorUrn"] = actor_urn
    return input_value


def message_for(urn: str, input_value: dict[str, Any]) -> str:
    """The SQS body that rings for a request whose input is input_value."""
    message = {
        "entityType": ENTITY_TYPE,
        "entityUrn": urn,
        "changeType": "UPSERT",
        "aspectName": INPUT_ASPECT,
        "aspect": {"contentType": "application/json", "value": json.dumps(input_value)},
    }
    return json.dumps(message)
