"""Hand-off: the stdin envelope where the CLI reads one, environment variables otherwise;
support probed once per CLI version. With the fake CLI in a real subprocess."""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import pytest

from remote_executor.handoff import Handoff
from remote_executor.models import ExecutionRequest, Status
from remote_executor.secrets import MASK, MemorySecretResolver, SecretSources
from remote_executor.task import Task, TaskContext

MakeContext = Callable[..., TaskContext]
MakeRequest = Callable[..., ExecutionRequest]
SECRET = "handoff-secret-value-77"
TOKEN = "handoff-gms-token-88"
FAKE = (sys.executable, str(Path(__file__).parent / "fixtures" / "fake_datahub.py"))
OLD_FAKE = (*FAKE, "--no-envelope")
PATHS: dict[str, tuple[tuple[str, ...], Literal["auto", "env"], str]] = {
    "envelope": (FAKE, "auto", "on stdin"),
    "older CLI": (OLD_FAKE, "auto", "as environment variables"),
    "EXECUTOR_SECRET_HANDOFF=env": (FAKE, "env", "as environment variables"),
}


def run(
    make_request: MakeRequest,
    make_context: MakeContext,
    path: str,
    config: dict[str, object],
    **context: object,
) -> tuple[Task, str]:
    command, mode, _ = PATHS[path]
    secrets = SecretSources([MemorySecretResolver({"DB_PASSWORD": SECRET, "db-pass": SECRET})])
    ctx = make_context(
        handoff=Handoff(command, mode), datahub_command=command, secrets=secrets, **context
    )
    task = Task(make_request(config), ctx)
    result = task.run()
    assert result.status is Status.SUCCESS, result.report
    return task, result.report


@pytest.mark.parametrize("path", PATHS)
def test_each_path_gets_the_value_to_the_cli(
    make_request: MakeRequest, make_context: MakeContext, path: str
) -> None:
    how = PATHS[path][2]
    config = {
        "password": "${DB_PASSWORD}",
        "print_env_reversed": ["DB_PASSWORD"],
        "print_process_env": ["DB_PASSWORD"],
    }

    task, report = run(make_request, make_context, path, config)

    assert f"DB_PASSWORD reversed={SECRET[::-1]}" in report  # the CLI could expand it
    in_environment = "no" if how == "on stdin" else "yes"
    assert f"DB_PASSWORD in environment: {in_environment}" in report
    assert f"Secrets DB_PASSWORD (memory), handed over {how}." in report
    assert SECRET.encode() not in b"".join(
        p.read_bytes() for p in task.dir.rglob("*") if p.is_file()
    )


@pytest.mark.parametrize("path", PATHS)
def test_a_name_with_hyphens_reaches_the_cli(
    make_request: MakeRequest, make_context: MakeContext, path: str
) -> None:
    config = {"echo": "password is ${db-pass}"}

    task, report = run(make_request, make_context, path, config)

    # Expanded by the CLI (then masked): the placeholder itself would have shown.
    assert f"password is {MASK}" in report
    assert "${EXECUTOR_SECRET_db_hpass}" in (task.dir / "recipe.yml").read_text()


@pytest.mark.parametrize("path", PATHS)
def test_token_reaches_only_the_sink(
    make_request: MakeRequest, make_context: MakeContext, path: str
) -> None:
    how = PATHS[path][2]
    config = {"print_process_env": ["DATAHUB_GMS_TOKEN"]}

    task, report = run(
        make_request, make_context, path, config, gms_url="http://gms.invalid/gms", token=TOKEN
    )

    in_environment = "no" if how == "on stdin" else "yes"
    assert f"DATAHUB_GMS_TOKEN in environment: {in_environment}" in report
    recipe = (task.dir / "recipe.yml").read_text()
    assert "token: ${DATAHUB_GMS_TOKEN}" in recipe
    assert TOKEN not in recipe


def test_the_envelope_is_what_the_cli_reads_on_stdin(tmp_path: Path) -> None:
    handoff = Handoff(FAKE)
    delivery = handoff.deliver("source: {}\n", tmp_path / "recipe.yml", {"A": "v-1"})

    assert delivery.config_argument == "-"
    assert delivery.env == {}
    assert delivery.stdin is not None
    assert json.loads(delivery.stdin) == {
        "__recipe_yaml__": "source: {}\n",
        "__secrets__": {"A": "v-1"},
    }


def test_without_values_the_recipe_file_is_used_and_nothing_is_probed(tmp_path: Path) -> None:
    cli = tmp_path / "datahub"
    write_cli(cli, "Use - to read a JSON envelope with __recipe_yaml__")

    delivery = Handoff((str(cli),)).deliver("source: {}\n", tmp_path / "recipe.yml", {})

    assert delivery.config_argument == str(tmp_path / "recipe.yml")
    assert delivery.stdin is None
    assert not (tmp_path / "datahub.count").exists()


def write_cli(path: Path, help_text: str) -> None:
    counter = path.with_suffix(".count")
    path.write_text(f"#!/bin/sh\necho probed >> {counter}\necho '{help_text}'\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_support_is_probed_once_per_cli_version(tmp_path: Path) -> None:
    cli = tmp_path / "datahub"
    write_cli(cli, "Use - to read a JSON envelope with __recipe_yaml__")
    handoff = Handoff((str(cli),))

    assert [handoff.reads_envelope() for _ in range(3)] == [True, True, True]
    assert (tmp_path / "datahub.count").read_text().count("probed") == 1

    write_cli(cli, "Use - to read the recipe from stdin, as a longer text of an older CLI")
    os.utime(cli, ns=(0, 10**9))  # another version of the CLI is another file

    assert handoff.reads_envelope() is False
    assert (tmp_path / "datahub.count").read_text().count("probed") == 2


def test_a_cli_that_cannot_start_gets_environment_variables() -> None:
    assert Handoff(("/nonexistent/datahub",)).reads_envelope() is False
