"""Settings: every environment name, legacy and new, and flags over the environment."""

from __future__ import annotations

import os
from pathlib import Path

import click
import pytest

from remote_executor.cli import load_settings
from remote_executor.errors import ConfigurationError
from remote_executor.settings import Settings, parse_name_map

SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf"
BAD_ITEM_ERROR = (
    "EXECUTOR_SECRETS: 'DB_PASSWORD' is not NAME=VALUE; expected e.g. "
    "DB_PASSWORD=arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf"
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No variable of the machine running the tests may reach Settings (names are case-blind)."""
    for name in list(os.environ):
        if name.upper().startswith(("EXECUTOR_", "DATAHUB_", "AWS_")):
            monkeypatch.delenv(name)


def test_defaults_without_any_environment() -> None:
    settings = load_settings()

    assert settings.gms_url is None
    assert settings.token is None
    assert settings.queue_url is None
    assert settings.aws_region is None
    assert settings.worker_id == "remote"
    assert settings.max_concurrent_tasks == 4
    assert settings.secrets == {}
    assert settings.secret_sources == ["aws", "file", "env"]
    assert settings.secrets_dir == Path("/mnt/secrets")
    assert settings.secrets_prefix is None
    assert settings.secret_cache_seconds == 60
    assert settings.secret_handoff == "auto"
    assert settings.child_env_passthrough == []


@pytest.mark.parametrize(
    ("variable", "attribute", "value"),
    [
        ("DATAHUB_GMS_URL", "gms_url", "https://acme.acryl.io/gms"),
        ("DATAHUB_BASE_URL", "gms_url", "https://acme.acryl.io/gms"),
        ("DATAHUB_GMS_TOKEN", "token", "tok-new"),
        ("DATAHUB_ACCESS_TOKEN", "token", "tok-legacy"),
        ("EXECUTOR_QUEUE_URL", "queue_url", "https://sqs.eu-west-1.amazonaws.com/1/new"),
        ("AWS_COMMAND_QUEUE_URL", "queue_url", "https://sqs.eu-west-1.amazonaws.com/1/old"),
        ("AWS_REGION", "aws_region", "eu-west-1"),
        ("AWS_DEFAULT_REGION", "aws_region", "eu-central-1"),
        ("EXECUTOR_WORKER_ID", "worker_id", "team-a"),
    ],
)
def test_each_environment_name_is_read(
    monkeypatch: pytest.MonkeyPatch, variable: str, attribute: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)

    assert getattr(load_settings(), attribute) == value


def test_new_names_win_over_legacy_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATAHUB_BASE_URL", "http://legacy/gms")
    monkeypatch.setenv("DATAHUB_GMS_URL", "http://new/gms")
    monkeypatch.setenv("DATAHUB_ACCESS_TOKEN", "legacy-token")
    monkeypatch.setenv("DATAHUB_GMS_TOKEN", "new-token")
    monkeypatch.setenv("AWS_COMMAND_QUEUE_URL", "http://legacy/q")
    monkeypatch.setenv("EXECUTOR_QUEUE_URL", "http://new/q")

    settings = load_settings()

    assert (settings.gms_url, settings.token, settings.queue_url) == (
        "http://new/gms",
        "new-token",
        "http://new/q",
    )


def test_aws_region_wins_over_aws_default_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")

    assert load_settings().aws_region == "eu-west-1"


def test_flags_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXECUTOR_WORKER_ID", "from-env")
    monkeypatch.setenv("AWS_COMMAND_QUEUE_URL", "http://env/q")
    monkeypatch.setenv("DATAHUB_BASE_URL", "http://env/gms")
    monkeypatch.setenv("EXECUTOR_MAX_CONCURRENT_TASKS", "8")

    settings = load_settings(
        worker_id="from-flag",
        queue_url="http://flag/q",
        gms_url="http://flag/gms/",
        max_concurrent_tasks=2,
    )

    assert settings.worker_id == "from-flag"
    assert settings.queue_url == "http://flag/q"
    assert settings.gms_url == "http://flag/gms"
    assert settings.max_concurrent_tasks == 2


def test_flags_not_given_leave_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXECUTOR_QUEUE_URL", "http://env/q")

    assert load_settings(queue_url=None, worker_id=None).queue_url == "http://env/q"


def test_gms_url_loses_its_trailing_slash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATAHUB_GMS_URL", "https://acme.acryl.io/gms/")

    assert load_settings().gms_url == "https://acme.acryl.io/gms"


def test_token_is_not_shown_in_the_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATAHUB_GMS_TOKEN", "very-secret-token")

    settings = load_settings()

    assert "very-secret-token" not in repr(settings)
    assert settings.token == "very-secret-token"


def test_executor_secrets_are_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXECUTOR_SECRETS", f" DB_PASSWORD = {SECRET_ARN} ,API_KEY=api-key-name,")

    assert load_settings().secrets == {"DB_PASSWORD": SECRET_ARN, "API_KEY": "api-key-name"}


def test_empty_executor_secrets_means_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXECUTOR_SECRETS", "")

    assert load_settings().secrets == {}


@pytest.mark.parametrize("raw", ["DB_PASSWORD", f"API_KEY={SECRET_ARN},DB_PASSWORD"])
def test_bad_executor_secrets_item_names_the_item(
    monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    monkeypatch.setenv("EXECUTOR_SECRETS", raw)

    with pytest.raises(click.ClickException) as caught:
        load_settings()

    assert caught.value.message == BAD_ITEM_ERROR


def test_secret_settings_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EXECUTOR_SECRET_SOURCES", "file, aws")
    monkeypatch.setenv("EXECUTOR_SECRETS_PREFIX", "datahub/")
    monkeypatch.setenv("EXECUTOR_SECRETS_DIR", str(tmp_path))
    monkeypatch.setenv("EXECUTOR_SECRET_CACHE_SECONDS", "0")
    monkeypatch.setenv("EXECUTOR_SECRET_HANDOFF", "env")
    monkeypatch.setenv("EXECUTOR_SECRETS", f"PG={SECRET_ARN}:password::,OLD=db::AWSPREVIOUS:")

    settings = load_settings()

    assert settings.secret_sources == ["file", "aws"]
    assert settings.secrets_prefix == "datahub/"
    assert settings.secrets_dir == tmp_path
    assert settings.secret_cache_seconds == 0
    assert settings.secret_handoff == "env"
    assert settings.secrets == {"PG": f"{SECRET_ARN}:password::", "OLD": "db::AWSPREVIOUS:"}


@pytest.mark.parametrize("item", ["=arn", "NAME=", "NAME= ", " = "])
def test_parse_name_map_refuses_an_empty_side(item: str) -> None:
    with pytest.raises(ConfigurationError, match=r"^--env: .* is not NAME=VALUE"):
        parse_name_map(item, "--env")


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "EXECUTOR_MAX_CONCURRENT_TASKS",
            "0",
            "Input should be greater than or equal to 1",
        ),
        *[
            (
                "EXECUTOR_SECRET_SOURCES",
                raw,
                f"{raw} is not an order of aws, file, env (each at most once)",
            )
            for raw in ("aws,vault", "aws,aws", "env,file,file")
        ],
        (
            "EXECUTOR_SECRETS",
            "PG=arn:aws:ssm:eu-west-1:123456789012:parameter/pg",
            "PG: 'arn:aws:ssm:eu-west-1:123456789012:parameter/pg' is not a Secrets Manager "
            "ARN; expected arn:aws:secretsmanager:<region>:<account>:secret:<name>[:json-key::]",
        ),
    ],
)
def test_invalid_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(click.ClickException) as caught:
        load_settings()

    assert caught.value.message == f"invalid settings: {variable}: {message}"


def test_require_urls_say_how_to_set_them() -> None:
    settings = load_settings()

    with pytest.raises(
        ConfigurationError, match=r"^no GMS URL: set DATAHUB_GMS_URL \(or --gms-url\)"
    ):
        settings.require_gms_url()
    with pytest.raises(
        ConfigurationError, match=r"^no queue URL: set EXECUTOR_QUEUE_URL \(or --queue-url\)"
    ):
        settings.require_queue_url()


def test_work_dir_and_numbers_from_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("EXECUTOR_WORK_DIR", str(tmp_path))
    monkeypatch.setenv("EXECUTOR_LEASE_SECONDS", "60")
    monkeypatch.setenv("EXECUTOR_REPORT_INTERVAL_SECONDS", "2.5")

    settings = load_settings()

    assert settings.work_dir == tmp_path
    assert settings.lease_seconds == 60
    assert settings.report_interval_seconds == 2.5


WORKER_ENVIRON = {
    "PATH": "/usr/local/bin:/usr/bin",
    "HOME": "/home/executor",
    "AWS_REGION": "eu-west-1",
    "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "static-secret-key",
    "AWS_SESSION_TOKEN": "session-token",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/abc",
    "DATAHUB_GMS_TOKEN": "worker-token",
    "EXECUTOR_SECRETS": f"DB_PASSWORD={SECRET_ARN}",
    "ORACLE_HOME": "/opt/oracle",
}


def test_child_environment_passes_the_allowed_names_only() -> None:
    env = Settings().child_environment(WORKER_ENVIRON)

    assert env == {
        "PATH": "/usr/local/bin:/usr/bin",
        "HOME": "/home/executor",
        "AWS_REGION": "eu-west-1",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/abc",
        "DATAHUB_TELEMETRY_ENABLED": "false",
    }
    for withheld in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        assert withheld not in env


def test_child_environment_keeps_telemetry_setting_of_the_worker() -> None:
    env = Settings().child_environment({"DATAHUB_TELEMETRY_ENABLED": "true"})

    assert env["DATAHUB_TELEMETRY_ENABLED"] == "true"


def test_child_env_passthrough_adds_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXECUTOR_CHILD_ENV_PASSTHROUGH", " ORACLE_HOME, ,NOT_SET ")

    settings = load_settings()
    env = settings.child_environment(WORKER_ENVIRON)

    assert settings.child_env_passthrough == ["ORACLE_HOME", "NOT_SET"]
    assert env["ORACLE_HOME"] == "/opt/oracle"
    assert "NOT_SET" not in env
    assert "AWS_SECRET_ACCESS_KEY" not in env


def test_fail_closed_defaults_and_the_worker_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXECUTOR_KILL_GRACE_SECONDS", "4")
    settings = load_settings()

    assert settings.task_timeout_seconds == 11 * 3600
    assert settings.keep_task_dirs == 20
    assert settings.task_log_max_mb == 200
    config = settings.worker_config()
    assert (config.lease_seconds, config.max_attempts, config.max_receives) == (300, 3, 50)
    assert config.retry_delay_seconds == 30
    assert config.lease_stop_margin_seconds == 19.0
    assert config.stale_heartbeat_seconds == 15.0


def test_a_timeout_past_what_a_lease_can_cover_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EXECUTOR_TASK_TIMEOUT_SECONDS", "43000")
    monkeypatch.setenv("EXECUTOR_LEASE_SECONDS", "600")

    with pytest.raises(click.ClickException) as caught:
        load_settings()

    assert caught.value.message == (
        "invalid settings: EXECUTOR_TASK_TIMEOUT_SECONDS=43000 is longer than a task can "
        "hold its message: SQS keeps a message invisible for at most 12 h after its receipt, "
        "and the executor needs one lease (EXECUTOR_LEASE_SECONDS=600) to stop, report and "
        "delete it; set it to 42600 or less"
    )
