"""Recipes: parse errors that say what and where; what the executor adds and removes."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from remote_executor.errors import RecipeError
from remote_executor.models import ExecutionRequest, TaskKind
from remote_executor.recipe import parse_recipe, prepare_recipe

REST_SINK = {
    "type": "datahub-rest",
    "config": {"server": "http://gms:8080/gms", "token": "${DATAHUB_GMS_TOKEN}"},
}
FILE_SINK = {"type": "file", "config": {"filename": "/work/r1/metadata.json"}}
RECIPE = """\
source:
  type: postgres
  config:
    host_port: db:5432
    username: ${DB_USER:-datahub}
    password: ${DB_PASSWORD}
"""


def request(recipe: str = RECIPE, **fields: Any) -> ExecutionRequest:
    return ExecutionRequest(
        request_id="r1", task=TaskKind.RUN_INGEST, executor_id="remote", recipe=recipe, **fields
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "source:\n  type: postgres\n   config: {}\n",
            "recipe is not valid YAML or JSON at line 3, column 10: mapping values are not "
            "allowed here",
        ),
        (
            "source:\n  type: x\n  config: [a, b\n",
            "recipe is not valid YAML or JSON at line 4, column 1: expected ',' or ']', but got "
            "'<stream end>'",
        ),
        (
            '{"source": {"type": "postgres",}',
            "recipe is not valid YAML or JSON at line 1, column 33: expected ',' or '}', but got "
            "'<stream end>'",
        ),
        ("- a\n- b\n", "recipe must be a mapping with a 'source' section, got list"),
        (
            "source:\n  type: x\nwhen: 2001-13-45\n",
            "recipe has a value YAML cannot read: ValueError('month must be in 1..12')",
        ),
        ("just text", "recipe must be a mapping with a 'source' section, got str"),
        (
            "sink:\n  type: console\n",
            "recipe has no 'source' section: add source.type and source.config",
        ),
        ("source: postgres\n", "recipe 'source' has no 'type' (e.g. type: postgres)"),
        ("source:\n  config: {}\n", "recipe 'source' has no 'type' (e.g. type: postgres)"),
    ],
)
def test_parse_errors_say_what_and_where(text: str, message: str) -> None:
    with pytest.raises(RecipeError) as caught:
        parse_recipe(text)

    assert str(caught.value) == message


def test_json_recipe_is_accepted() -> None:
    assert parse_recipe('{"source": {"type": "postgres", "config": {}}}') == {
        "source": {"type": "postgres", "config": {}}
    }


def test_default_sink_added_when_the_recipe_has_none() -> None:
    prepared = prepare_recipe(request(), REST_SINK)

    recipe = yaml.safe_load(prepared.text)
    assert recipe["sink"] == REST_SINK
    assert prepared.source_type == "postgres"
    assert prepared.notes == [
        "The recipe has no sink: added a datahub-rest sink to http://gms:8080/gms."
    ]


def test_file_sink_note_names_the_file() -> None:
    prepared = prepare_recipe(request(), FILE_SINK)

    assert prepared.notes == [
        "The recipe has no sink: added a file sink to /work/r1/metadata.json."
    ]


def test_recipe_sink_is_kept() -> None:
    own_sink = RECIPE + "sink:\n  type: console\n"

    prepared = prepare_recipe(request(own_sink), REST_SINK)

    assert yaml.safe_load(prepared.text)["sink"] == {"type": "console"}
    assert prepared.notes == []


def test_no_sink_added_without_a_default() -> None:
    prepared = prepare_recipe(request(), None)

    assert "sink" not in yaml.safe_load(prepared.text)
    assert prepared.notes == []


def test_run_id_is_the_request_id_even_if_the_recipe_set_one() -> None:
    prepared = prepare_recipe(request(RECIPE + "run_id: theirs\n"), None)

    assert yaml.safe_load(prepared.text)["run_id"] == "r1"


def test_pipeline_name_is_the_ingestion_source() -> None:
    prepared = prepare_recipe(request(ingestion_source="urn:li:dataHubIngestionSource:pg"), None)

    assert yaml.safe_load(prepared.text)["pipeline_name"] == "urn:li:dataHubIngestionSource:pg"


def test_existing_pipeline_name_is_kept() -> None:
    recipe = RECIPE + "pipeline_name: my-pipeline\n"

    prepared = prepare_recipe(
        request(recipe, ingestion_source="urn:li:dataHubIngestionSource:pg"), None
    )

    assert yaml.safe_load(prepared.text)["pipeline_name"] == "my-pipeline"


def test_no_pipeline_name_without_ingestion_source() -> None:
    assert "pipeline_name" not in yaml.safe_load(prepare_recipe(request(), None).text)


def test_datahub_reporter_is_removed_with_a_note() -> None:
    recipe = RECIPE + (
        "reporting:\n"
        "  - type: datahub\n"
        "  - type: file\n"
        "    config:\n"
        "      filename: /tmp/report.json\n"
    )

    prepared = prepare_recipe(request(recipe), None)

    assert yaml.safe_load(prepared.text)["reporting"] == [
        {"type": "file", "config": {"filename": "/tmp/report.json"}}
    ]
    assert prepared.notes == [
        "Removed the recipe's 'datahub' reporter: the executor reports the result."
    ]


def test_other_reporters_are_left_alone() -> None:
    recipe = RECIPE + "reporting:\n  - type: file\n    config: {filename: /tmp/r.json}\n"

    prepared = prepare_recipe(request(recipe), None)

    assert yaml.safe_load(prepared.text)["reporting"] == [
        {"type": "file", "config": {"filename": "/tmp/r.json"}}
    ]
    assert prepared.notes == []


def test_placeholders_are_kept_verbatim() -> None:
    prepared = prepare_recipe(request(), REST_SINK)

    assert "${DB_PASSWORD}" in prepared.text
    assert "${DB_USER:-datahub}" in prepared.text
    assert "${DATAHUB_GMS_TOKEN}" in prepared.text
    config = yaml.safe_load(prepared.text)["source"]["config"]
    assert config["password"] == "${DB_PASSWORD}"
    assert config["username"] == "${DB_USER:-datahub}"


def test_bad_recipe_fails_prepare_too() -> None:
    with pytest.raises(RecipeError, match=r"^recipe has no 'source' section"):
        prepare_recipe(request("sink:\n  type: console\n"), REST_SINK)
