"""The SQS message contract: build, decode, and say exactly what is wrong."""

from __future__ import annotations

import json
from typing import Any

import pytest

from remote_executor.errors import MalformedMessageError, MessageError, UnknownTaskError
from remote_executor.messages import (
    INPUT_ASPECT,
    TRUNCATED_ASPECT,
    build_message,
    parse_envelope,
    parse_input,
)
from remote_executor.models import TaskKind

URN = "urn:li:dataHubExecutionRequest:6f1c2e"
RECIPE = "source:\n  type: postgres\n  config:\n    password: ${DB_PASSWORD}\n"


def envelope(value: Any = None, **overrides: Any) -> str:
    """A message body in the shape of DESIGN.md, with ``aspect.value`` JSON-encoded."""
    data: dict[str, Any] = {
        "entityType": "dataHubExecutionRequest",
        "entityUrn": URN,
        "changeType": "UPSERT",
        "aspectName": INPUT_ASPECT,
        "aspect": {"contentType": "application/json", "value": json.dumps(value or good_input())},
    }
    data.update(overrides)
    return json.dumps(data)


def good_input(**overrides: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "task": "RUN_INGEST",
        "executorId": "remote",
        "requestedAt": 1700000000000,
        "args": {
            "recipe": RECIPE,
            "version": "native",
            "debug_mode": "false",
            "extra_env_vars": "{}",
            "extra_pip_requirements": "[]",
        },
        "source": {
            "type": "MANUAL_INGESTION_SOURCE",
            "ingestionSource": "urn:li:dataHubIngestionSource:pg",
        },
    }
    value.update(overrides)
    return value


def with_args(**args: Any) -> dict[str, Any]:
    value = good_input()
    value["args"] = {**value["args"], **args}
    return value


def test_round_trip_of_build_message() -> None:
    body = build_message(
        "6f1c2e",
        RECIPE,
        "remote",
        task=TaskKind.TEST_CONNECTION,
        ingestion_source="urn:li:dataHubIngestionSource:pg",
        extra_env_vars={"REGION": "eu-west-1"},
    )

    env = parse_envelope(body)
    assert env.urn == URN
    assert env.request_id == "6f1c2e"
    assert env.input is not None
    request = parse_input(env.urn, env.input)

    assert request.request_id == "6f1c2e"
    assert request.urn == URN
    assert request.task is TaskKind.TEST_CONNECTION
    assert request.executor_id == "remote"
    assert request.recipe == RECIPE
    assert request.ingestion_source == "urn:li:dataHubIngestionSource:pg"
    assert request.extra_env_vars == {"REGION": "eu-west-1"}
    assert request.extra_pip_requirements == []
    assert request.debug_mode is False
    assert request.cli_version == "native"
    assert isinstance(request.requested_at_ms, int)


def test_build_message_has_the_contract_shape() -> None:
    data = json.loads(build_message("abc", RECIPE, "remote"))

    assert data["entityType"] == "dataHubExecutionRequest"
    assert data["entityUrn"] == "urn:li:dataHubExecutionRequest:abc"
    assert data["changeType"] == "UPSERT"
    assert data["aspectName"] == "dataHubExecutionRequestInput"
    assert data["aspect"]["contentType"] == "application/json"
    value = json.loads(data["aspect"]["value"])
    assert value["task"] == "RUN_INGEST"
    assert all(isinstance(arg, str) for arg in value["args"].values())
    assert "ingestionSource" not in value["source"]


def test_full_input_is_decoded() -> None:
    value = good_input(
        args={
            "recipe": RECIPE,
            "version": "0.14.1",
            "debug_mode": "TRUE",
            "extra_env_vars": '{"A": "1", "N": 2}',
            "extra_pip_requirements": '["acryl-datahub[snowflake]"]',
        }
    )

    request = parse_input(URN, value)

    assert request.requested_at_ms == 1700000000000
    assert request.cli_version == "0.14.1"
    assert request.debug_mode is True
    assert request.extra_env_vars == {"A": "1", "N": "2"}
    assert request.extra_pip_requirements == ["acryl-datahub[snowflake]"]


def test_missing_optional_args_get_defaults() -> None:
    request = parse_input(
        URN, {"task": "RUN_INGEST", "executorId": "remote", "args": {"recipe": RECIPE}}
    )

    assert request.extra_env_vars == {}
    assert request.extra_pip_requirements == []
    assert request.debug_mode is False
    assert request.cli_version is None
    assert request.ingestion_source is None
    assert request.requested_at_ms is None


def test_truncated_message_has_no_input() -> None:
    body = json.dumps({"entityUrn": URN, "aspectName": TRUNCATED_ASPECT})

    env = parse_envelope(body)

    assert env.urn == URN
    assert env.input is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("not json at all", "message body is not JSON (Expecting value: line 1 column 1 (char 0))"),
        ("[1, 2]", "message body is JSON but not an object (got list)"),
        ('"text"', "message body is JSON but not an object (got str)"),
        (
            json.dumps({"aspectName": INPUT_ASPECT}),
            "message has no execution request urn: entityUrn must start with "
            "urn:li:dataHubExecutionRequest:",
        ),
        (
            json.dumps({"entityUrn": "urn:li:dataset:x"}),
            "message has no execution request urn: entityUrn must start with "
            "urn:li:dataHubExecutionRequest:",
        ),
        (
            json.dumps({"entityUrn": "urn:li:dataHubExecutionRequest:"}),
            "message has no execution request urn: entityUrn must start with "
            "urn:li:dataHubExecutionRequest:",
        ),
    ],
)
def test_envelope_without_urn(body: str, message: str) -> None:
    with pytest.raises(MalformedMessageError) as caught:
        parse_envelope(body)

    assert str(caught.value) == message
    assert caught.value.urn is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            envelope(aspectName="dataHubExecutionRequestResult"),
            "message aspectName is 'dataHubExecutionRequestResult', expected "
            "'dataHubExecutionRequestInput' or 'EXECUTOR_SQS_TRUNCATED'",
        ),
        (
            envelope(aspectName=None),
            "message aspectName is None, expected 'dataHubExecutionRequestInput' or "
            "'EXECUTOR_SQS_TRUNCATED'",
        ),
        (
            envelope(aspect={"value": {"task": "RUN_INGEST"}}),
            "message aspect.value must be a JSON string",
        ),
        (envelope(aspect="not a map"), "message aspect.value must be a JSON string"),
        (
            envelope(aspect={"value": "{task"}),
            "message aspect.value is not JSON (Expecting property name enclosed in double "
            "quotes: line 1 column 2 (char 1))",
        ),
        (envelope(aspect={"value": "[1]"}), "message aspect.value must encode a JSON object"),
    ],
)
def test_envelope_with_urn_but_bad_aspect(body: str, message: str) -> None:
    with pytest.raises(MalformedMessageError) as caught:
        parse_envelope(body)

    assert str(caught.value) == message
    assert caught.value.urn == URN


def test_unknown_task_names_the_task_and_keeps_the_urn() -> None:
    with pytest.raises(UnknownTaskError) as caught:
        parse_input(URN, good_input(task="RUN_SOMETHING"))

    assert str(caught.value) == (
        "unknown task 'RUN_SOMETHING': this executor runs RUN_INGEST and TEST_CONNECTION"
    )
    assert caught.value.urn == URN
    assert isinstance(caught.value, MessageError)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            good_input(task=None),
            "unknown task None: this executor runs RUN_INGEST and TEST_CONNECTION",
        ),
        (good_input(executorId=None), "request input has no executorId"),
        (good_input(executorId=""), "request input has no executorId"),
        (good_input(args="recipe"), "request input has no args map"),
        (with_args(recipe=None), "request args have no recipe"),
        (with_args(recipe="  \n"), "request args have no recipe"),
        (
            with_args(extra_env_vars="{not json"),
            "args.extra_env_vars is not valid JSON (Expecting property name enclosed in double "
            "quotes: line 1 column 2 (char 1))",
        ),
        (with_args(extra_env_vars='["A=1"]'), "args.extra_env_vars must encode a JSON dict"),
        (
            with_args(extra_pip_requirements='{"a": 1}'),
            "args.extra_pip_requirements must encode a JSON list",
        ),
        (
            with_args(extra_env_vars="[" * 100_000),
            "args.extra_env_vars is not valid JSON (maximum recursion depth exceeded while "
            "decoding a JSON array from a unicode string)",
        ),
        (
            with_args(version=5),
            "request input is not valid: cli_version: Input should be a valid string",
        ),
        (
            with_args(timeout_seconds="soon"),
            "args.timeout_seconds must be a positive number of seconds, not 'soon'",
        ),
        (
            with_args(timeout_seconds="-5"),
            "args.timeout_seconds must be a positive number of seconds, not '-5'",
        ),
    ],
)
def test_bad_input_says_what_and_keeps_the_urn(value: dict[str, Any], message: str) -> None:
    with pytest.raises(MessageError) as caught:
        parse_input(URN, value)

    assert str(caught.value) == message
    assert caught.value.urn == URN


def test_timeout_seconds_is_read_from_args() -> None:
    assert parse_input(URN, with_args(timeout_seconds="90")).timeout_seconds == 90.0
    assert parse_input(URN, good_input()).timeout_seconds is None


def test_json_nested_too_deep_is_malformed_not_a_crash() -> None:
    with pytest.raises(MalformedMessageError, match=r"^message body is not JSON"):
        parse_envelope("[" * 100_000)
