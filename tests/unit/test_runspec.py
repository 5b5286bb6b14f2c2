"""RunSpec rules: which names a recipe may read, what extra_env_vars may set, precedence."""

from __future__ import annotations

from pathlib import Path

import pytest

from remote_executor import runspec
from remote_executor.errors import RecipeError
from remote_executor.models import TaskKind

GMS = "http://gms.internal:8080"
RESERVED = runspec.Reserved(frozenset({"PATH", "HOME", "AWS_CONTAINER_AUTHORIZATION_TOKEN"}), GMS)
TOKEN_MESSAGE = (
    "${DATAHUB_GMS_TOKEN} names a credential of the executor; recipes may use it only as "
    f"the token of a datahub-rest sink to {GMS}"
)


def recipe(source_config: str = "{}", sink: str = "") -> str:
    return f"source:\n  type: postgres\n  config: {source_config}\n{sink}"


def sink(server: str = GMS, token: str = "${DATAHUB_GMS_TOKEN}", kind: str = "datahub-rest") -> str:
    return f"sink:\n  type: {kind}\n  config:\n    server: {server}\n    token: '{token}'\n"


def check(text: str, reserved: runspec.Reserved = RESERVED) -> bool:
    return runspec.check_recipe(text, text, reserved)


def test_the_token_as_the_sink_token_to_our_gms_is_allowed_and_handed_over() -> None:
    assert check(recipe(sink=sink())) is True
    assert check(recipe(sink=sink(server=GMS + "/"))) is True
    assert check(recipe(sink=sink(server="${DATAHUB_GMS_URL}"))) is True


def test_a_recipe_without_the_token_does_not_get_it() -> None:
    assert check(recipe(sink="sink:\n  type: file\n  config: {filename: out.json}\n")) is False
    assert check(recipe("{password: '${DB_PASSWORD}'}")) is False


@pytest.mark.parametrize(
    "text",
    [
        recipe("{platform_instance: '${DATAHUB_GMS_TOKEN}'}"),
        recipe("{platform_instance: $DATAHUB_GMS_TOKEN}"),
        recipe("{platform_instance: 'x-${DATAHUB_GMS_TOKEN:-none}'}"),
        recipe(sink=sink(server="http://attacker.example")),
        recipe(sink=sink(kind="datahub-kafka")),
        # Allowed once in the sink, then read a second time elsewhere.
        recipe("{platform_instance: '${DATAHUB_GMS_TOKEN}'}", sink=sink()),
    ],
)
def test_the_token_anywhere_else_is_refused(text: str) -> None:
    with pytest.raises(RecipeError) as caught:
        check(text)
    assert str(caught.value) == TOKEN_MESSAGE


@pytest.mark.parametrize(
    "name",
    [
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "AWS_SECRET_ACCESS_KEY",
        "EXECUTOR_SECRETS",
        "HOME",
        "PATH",
        "DATAHUB_BASE_URL",
    ],
)
def test_the_executors_own_names_are_refused(name: str) -> None:
    with pytest.raises(RecipeError) as caught:
        check(recipe(f"{{platform_instance: '${{{name}}}'}}"))
    assert str(caught.value) == (
        f"${{{name}}} names a variable of the executor's own environment; recipes may not "
        "read it (store the value as a secret and reference that name instead)"
    )


def test_the_legacy_token_name_gets_the_token_message() -> None:
    with pytest.raises(RecipeError, match=r"^\$\{DATAHUB_ACCESS_TOKEN\} names a credential"):
        check(recipe("{x: '${DATAHUB_ACCESS_TOKEN}'}"))


def test_without_a_gms_the_message_says_none_is_configured() -> None:
    no_gms = runspec.Reserved(frozenset(), None)
    with pytest.raises(RecipeError, match=r"to the executor's GMS \(none is configured\)$"):
        check(recipe(sink=sink()), no_gms)


def test_names_renamed_for_the_cli_are_not_mistaken_for_executor_names() -> None:
    original = recipe("{password: '${db-password}'}")
    prepared = recipe("{password: '${EXECUTOR_SECRET_db_hpassword}'}")
    assert runspec.check_recipe(prepared, original, RESERVED) is False
    with pytest.raises(RecipeError, match="EXECUTOR_SECRET_db_hpassword"):
        runspec.check_recipe(prepared, prepared, RESERVED)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"A=B": "1"},
            "extra_env_vars name 'A=B' is not a valid environment variable name "
            "(letters, digits and underscores, not starting with a digit)",
        ),
        ({"1ABC": "1"}, "extra_env_vars name '1ABC' is not a valid"),
        ({"": "1"}, "extra_env_vars name '' is not a valid"),
        ({"GOOD": "a\0b"}, "extra_env_vars value of GOOD contains a NUL character"),
        (
            {"PATH": "/tmp/evil"},
            "extra_env_vars may not set PATH: the executor sets or "
            "inherits it (see docs/configuration.md for the DATAHUB_ variables a request may set)",
        ),
        ({"LD_PRELOAD": "/tmp/x.so"}, "extra_env_vars may not set LD_PRELOAD"),
        ({"PYTHONPATH": "/tmp"}, "extra_env_vars may not set PYTHONPATH"),
        ({"DATAHUB_GMS_TOKEN": "x"}, "extra_env_vars may not set DATAHUB_GMS_TOKEN"),
        (
            {"DATAHUB_DISABLE_SECRET_MASKING": "1"},
            "extra_env_vars may not set DATAHUB_DISABLE_SECRET_MASKING",
        ),
        ({"AWS_ENDPOINT_URL": "http://x"}, "extra_env_vars may not set AWS_ENDPOINT_URL"),
        ({"EXECUTOR_TASK_ID": "x"}, "extra_env_vars may not set EXECUTOR_TASK_ID"),
        ({"HOME": "/tmp"}, "extra_env_vars may not set HOME"),
        ({"TMPDIR": "/tmp"}, "extra_env_vars may not set TMPDIR"),
    ],
)
def test_extra_env_vars_that_would_reach_the_executors_variables_are_refused(
    extra: dict[str, str], message: str
) -> None:
    with pytest.raises(RecipeError) as caught:
        runspec.check_extra_env(extra, RESERVED)
    assert str(caught.value).startswith(message)


def test_allowed_extra_env_vars_pass() -> None:
    runspec.check_extra_env(
        {
            "DB_HOST": "db",
            "DATAHUB_DEBUG": "true",
            "DATAHUB_REST_SINK_DEFAULT_MAX_THREADS": "4",
            "_private": "",
        },
        RESERVED,
    )


def test_the_executors_variables_are_applied_last() -> None:
    env = runspec.environment(
        {"PATH": "/usr/bin", "SHARED": "inherited"},
        {"SHARED": "request", "DB_HOST": "db"},
        runspec.own_variables(Path("/w/tmp"), GMS),
        {"DB_PASSWORD": "s3cret"},
    )
    assert env == {
        "PATH": "/usr/bin",
        "SHARED": "request",
        "DB_HOST": "db",
        "TMPDIR": "/w/tmp",
        "PYTHONUNBUFFERED": "1",
        "DATAHUB_ENABLE_SECRET_MASKING": "true",
        "DATAHUB_GMS_URL": GMS,
        "DB_PASSWORD": "s3cret",
    }


def test_provided_names_hold_the_token_only_when_the_sink_takes_it() -> None:
    assert "DATAHUB_GMS_TOKEN" not in runspec.provided_names(["A"], needs_token=False)
    assert runspec.provided_names(["A"], needs_token=True) == {
        "A",
        "DATAHUB_GMS_URL",
        "DATAHUB_GMS_TOKEN",
    }


def test_argv() -> None:
    invocation = runspec.Invocation(
        ("datahub",), TaskKind.TEST_CONNECTION, True, "-", Path("/w/report.json")
    )
    assert runspec.argv(invocation) == [
        "datahub",
        "--debug",
        "ingest",
        "run",
        "-c",
        "-",
        "--report-to",
        "/w/report.json",
        "--test-source-connection",
    ]
