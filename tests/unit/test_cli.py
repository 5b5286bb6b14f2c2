"""The executor command: exec and check wired from the environment, end to end on loopback."""

from __future__ import annotations

import os
import shlex
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog
from click.testing import CliRunner

from remote_executor.cli import main
from remote_executor.sandbox.aws import REGION, AwsSandbox
from remote_executor.sandbox.gms import GmsStandIn
from remote_executor.secrets import MASK

SECRET = "cli-secret-value-42"
TOKEN = "cli-gms-token-value"


@pytest.fixture(autouse=True)
def environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake_command: tuple[str, ...]
) -> Iterator[None]:
    """Only what the test sets: the fake CLI, a work dir in tmp_path, JSON logs."""
    for name in list(os.environ):
        if name.upper().startswith(("EXECUTOR_", "DATAHUB_", "AWS_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("EXECUTOR_DATAHUB_COMMAND", shlex.join(fake_command))
    monkeypatch.setenv("EXECUTOR_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("EXECUTOR_LOG_FORMAT", "json")
    monkeypatch.setenv("EXECUTOR_SECRETS_DIR", str(tmp_path / "secrets"))
    yield
    structlog.reset_defaults()


@pytest.fixture
def use_aws(monkeypatch: pytest.MonkeyPatch, aws_box: AwsSandbox) -> AwsSandbox:
    for name, value in aws_box.env().items():
        monkeypatch.setenv(name, value)
    return aws_box


def write_recipe(
    tmp_path: Path, recipe_yaml: Callable[..., str], config: dict[str, object]
) -> Path:
    path = tmp_path / "recipe.yml"
    path.write_text(recipe_yaml(config))
    return path


def test_exec_runs_a_recipe_locally(tmp_path: Path, recipe_yaml: Callable[..., str]) -> None:
    recipe = write_recipe(tmp_path, recipe_yaml, {"print_env": ["MY_VAR"], "write_report": True})

    result = CliRunner().invoke(main, ["exec", str(recipe), "--env", "MY_VAR=hello"])

    assert result.exit_code == 0, result.output
    assert "Succeeded: datahub exited with code 0" in result.output
    assert "\nSUCCESS\n" in result.output
    [log] = (tmp_path / "work").glob("exec-*/ingestion.log")
    assert "MY_VAR=hello" in log.read_text()
    assert f"  full log:          {log}" in result.output
    assert "  structured report: " in result.output
    assert "  metadata written:  " in result.output
    assert "~~~~ Execution log" not in result.output


def test_exec_failure_exits_one(tmp_path: Path, recipe_yaml: Callable[..., str]) -> None:
    recipe = write_recipe(tmp_path, recipe_yaml, {"exit_code": 3})

    result = CliRunner().invoke(main, ["exec", str(recipe)])

    assert result.exit_code == 1
    assert "Failed: datahub exited with code 3" in result.output
    assert "\nFAILURE\n" in result.output


def test_exec_bad_env_pair(tmp_path: Path, recipe_yaml: Callable[..., str]) -> None:
    recipe = write_recipe(tmp_path, recipe_yaml, {})

    result = CliRunner().invoke(main, ["exec", str(recipe), "--env", "NOVALUE"])

    assert result.exit_code == 2
    assert "--env: 'NOVALUE' is not NAME=VALUE" in result.output


def test_exec_bad_executor_secrets_is_a_clear_error(
    tmp_path: Path, recipe_yaml: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = write_recipe(tmp_path, recipe_yaml, {})
    monkeypatch.setenv("EXECUTOR_SECRETS", "DB_PASSWORD")

    result = CliRunner().invoke(main, ["exec", str(recipe)])

    assert result.exit_code == 1
    assert "Error: EXECUTOR_SECRETS: 'DB_PASSWORD' is not NAME=VALUE" in result.output


def test_exec_resolves_secrets_from_secrets_manager(
    tmp_path: Path,
    recipe_yaml: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    use_aws: AwsSandbox,
) -> None:
    arn = use_aws.put_secret(f"cli-{uuid.uuid4().hex[:6]}", SECRET)
    monkeypatch.setenv("EXECUTOR_SECRETS", f"DB_PASSWORD={arn}")
    recipe = write_recipe(
        tmp_path,
        recipe_yaml,
        {
            "password": "${DB_PASSWORD}",
            "print_env": ["DB_PASSWORD", "AWS_ACCESS_KEY_ID", "AWS_REGION"],
            "print_env_reversed": ["DB_PASSWORD"],
        },
    )

    result = CliRunner().invoke(main, ["exec", str(recipe)])

    assert result.exit_code == 0, result.output
    [task_dir] = (tmp_path / "work").glob("exec-*")
    log = (task_dir / "ingestion.log").read_text()
    assert f"DB_PASSWORD reversed={SECRET[::-1]}" in log
    assert f"DB_PASSWORD={MASK}" in log
    assert "AWS_ACCESS_KEY_ID=None" in log  # static keys stay with the worker
    assert f"AWS_REGION={REGION}" in log
    assert SECRET not in result.output
    for path in task_dir.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_exec_missing_secret_names_it(tmp_path: Path, recipe_yaml: Callable[..., str]) -> None:
    recipe = write_recipe(tmp_path, recipe_yaml, {"password": "${DB_PASSWORD}"})

    result = CliRunner().invoke(main, ["exec", str(recipe)])

    assert result.exit_code == 1
    assert (
        "Failed: Secret not resolved: secret ${DB_PASSWORD} referenced by the recipe was found "
        "in no source (aws: not in EXECUTOR_SECRETS, and EXECUTOR_SECRETS_PREFIX is not set; "
        f"file: {tmp_path / 'secrets'} does not exist (EXECUTOR_SECRETS_DIR); "
        "env: no variable DB_PASSWORD in the worker's environment). "
        "The subprocess was not started."
    ) in result.output


def test_check_everything_ok_without_showing_values(
    monkeypatch: pytest.MonkeyPatch, use_aws: AwsSandbox, fake_command: tuple[str, ...]
) -> None:
    arn = use_aws.put_secret(f"check-{uuid.uuid4().hex[:6]}", SECRET)
    queue_url = use_aws.create_queue(f"check-{uuid.uuid4().hex[:6]}")
    with GmsStandIn(token=TOKEN) as gms:
        monkeypatch.setenv("DATAHUB_GMS_URL", gms.url)
        monkeypatch.setenv("DATAHUB_GMS_TOKEN", TOKEN)
        monkeypatch.setenv("EXECUTOR_QUEUE_URL", queue_url)
        monkeypatch.setenv("EXECUTOR_SECRETS", f"DB_PASSWORD={arn}")

        result = CliRunner().invoke(main, ["check"])
    secrets_dir = os.environ["EXECUTOR_SECRETS_DIR"]
    work_dir = os.environ["EXECUTOR_WORK_DIR"]

    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"OK    gms      {gms.url} answers (DataHub v1.2.0)",
        "OK    token    accepted",
        f"OK    queue    {queue_url} reachable, 0 message(s) waiting",
        "OK    secrets  aws: EXECUTOR_SECRETS maps DB_PASSWORD",
        "OK    secrets  aws: DB_PASSWORD resolves",
        f"OK    secrets  file: {secrets_dir} does not exist",
        "OK    secrets  env: the worker's environment",
        f"OK    datahub  CLI 9.9.9 at {fake_command[0]}",
        "OK    datahub  secrets are handed over on stdin",
        f"OK    venvs    0 cached environments (0.00 of 10 GB) in {work_dir}/venvs; "
        "installs allowed",
    ]
    assert SECRET not in result.output
    assert TOKEN not in result.output


def test_check_without_configuration_says_what_to_set() -> None:
    result = CliRunner().invoke(main, ["check"])

    assert result.exit_code == 1
    assert result.output.splitlines()[:3] == [
        "FAIL  gms      no GMS URL: set DATAHUB_GMS_URL, e.g. https://<company>.acryl.io/gms",
        "FAIL  queue    no queue URL: set EXECUTOR_QUEUE_URL",
        "OK    secrets  aws: nothing mapped (EXECUTOR_SECRETS), no prefix",
    ]


def test_the_actor_of_a_datahub_access_token_is_its_actor_id() -> None:
    import base64
    import json as json_

    from remote_executor.cli_submit import token_actor

    def jwt(claims: object) -> str:
        body = base64.urlsafe_b64encode(json_.dumps(claims).encode()).decode().rstrip("=")
        return f"eyJhbGciOiJIUzI1NiJ9.{body}.c2lnbmF0dXJl"

    assert token_actor(jwt({"actorType": "USER", "actorId": "ann", "type": "PERSONAL"})) == (
        "urn:li:corpuser:ann"
    )
    assert token_actor(jwt({"sub": "ann"})) is None
    assert token_actor(jwt(["not", "claims"])) is None
    assert token_actor("a.b!.c") is None
    assert token_actor("not-a-jwt") is None
    assert token_actor(None) is None
