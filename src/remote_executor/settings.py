"""Every setting of the executor, and every environment variable it reads, named here.

``Settings`` is built once, in ``cli.py``, from flags and the environment, then
passed down. Legacy names of DataHub's own executor are accepted so existing
deployments keep working (``DATAHUB_BASE_URL``, ``DATAHUB_ACCESS_TOKEN``,
``AWS_COMMAND_QUEUE_URL``). boto3 reads its own variables (``AWS_REGION``,
``AWS_ENDPOINT_URL``, the credential chain); they are not repeated here, except
the region, which boto3 reads only as ``AWS_DEFAULT_REGION``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from remote_executor.config import WorkerConfig, max_task_seconds
from remote_executor.errors import ConfigurationError
from remote_executor.secrets.aws import SecretRef
from remote_executor.secrets.sources import SOURCE_NAMES
from remote_executor.settings_common import CommonSettings
from remote_executor.venvs.settings import VenvSettings

# What the ingestion subprocess inherits from the worker's environment, besides
# what the executor sets itself. Static AWS keys are deliberately absent: the
# child keeps the ambient chain (ECS container credentials, IRSA web identity).
CHILD_ENV_PASSTHROUGH = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TZ",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_STS_REGIONAL_ENDPOINTS",
    "DATAHUB_TELEMETRY_ENABLED",
)

# Set in the child unless the worker's environment already says otherwise: the
# executor's runs should not phone home from inside a customer's network.
CHILD_ENV_DEFAULTS = {"DATAHUB_TELEMETRY_ENABLED": "false"}


_SECRET_EXAMPLE = "DB_PASSWORD=arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf"


def parse_name_map(raw: str, what: str, example: str = _SECRET_EXAMPLE) -> dict[str, str]:
    """Parse ``NAME=VALUE,NAME2=VALUE2`` (CloudFormation's OptionalSecrets format)."""
    mapping: dict[str, str] = {}
    for raw_item in raw.split(","):
        item = raw_item.strip()
        if not item:
            continue
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ConfigurationError(f"{what}: {item!r} is not NAME=VALUE; expected e.g. {example}")
        mapping[name.strip()] = value.strip()
    return mapping


class Settings(VenvSettings, CommonSettings):
    """The whole configuration of one executor process (the environments' part in
    ``venvs.settings``)."""

    model_config = SettingsConfigDict(populate_by_name=True, extra="ignore")

    queue_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("EXECUTOR_QUEUE_URL", "AWS_COMMAND_QUEUE_URL"),
    )
    worker_id: str = Field(default="remote", validation_alias="EXECUTOR_WORKER_ID")
    max_concurrent_tasks: int = Field(
        default=4, ge=1, le=64, validation_alias="EXECUTOR_MAX_CONCURRENT_TASKS"
    )
    secrets: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict, validation_alias="EXECUTOR_SECRETS"
    )
    secrets_prefix: str | None = Field(default=None, validation_alias="EXECUTOR_SECRETS_PREFIX")
    secrets_dir: Path = Field(default=Path("/mnt/secrets"), validation_alias="EXECUTOR_SECRETS_DIR")
    secret_sources: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(SOURCE_NAMES), validation_alias="EXECUTOR_SECRET_SOURCES"
    )
    secret_cache_seconds: float = Field(
        default=60.0, ge=0, validation_alias="EXECUTOR_SECRET_CACHE_SECONDS"
    )
    secret_handoff: Literal["auto", "env"] = Field(
        default="auto", validation_alias="EXECUTOR_SECRET_HANDOFF"
    )
    report_interval_seconds: float = Field(
        default=5.0, gt=0, validation_alias="EXECUTOR_REPORT_INTERVAL_SECONDS"
    )
    lease_seconds: int = Field(
        default=300, ge=3, le=43200, validation_alias="EXECUTOR_LEASE_SECONDS"
    )
    max_attempts: int = Field(default=3, ge=1, le=1000, validation_alias="EXECUTOR_MAX_ATTEMPTS")
    # 11 h: SQS keeps a message invisible for at most 12 h after its receipt, and a task
    # must end, report and delete its message before that.
    task_timeout_seconds: float = Field(
        default=39_600.0, gt=0, validation_alias="EXECUTOR_TASK_TIMEOUT_SECONDS"
    )
    keep_task_dirs: int = Field(default=20, ge=0, validation_alias="EXECUTOR_KEEP_TASK_DIRS")
    task_log_max_mb: int = Field(default=200, ge=1, validation_alias="EXECUTOR_TASK_LOG_MAX_MB")
    kill_grace_seconds: float = Field(
        default=10.0, ge=0, validation_alias="EXECUTOR_KILL_GRACE_SECONDS"
    )
    task_memory_limit_mb: int | None = Field(
        default=None, ge=64, validation_alias="EXECUTOR_TASK_MEMORY_LIMIT_MB"
    )
    shutdown_grace_seconds: float = Field(
        default=100.0, ge=0, validation_alias="EXECUTOR_SHUTDOWN_GRACE_SECONDS"
    )
    signal_poll_seconds: float = Field(
        default=3.0, gt=0, validation_alias="EXECUTOR_SIGNAL_POLL_SECONDS"
    )
    dead_letter_queue_url: str | None = Field(
        default=None, validation_alias="EXECUTOR_DEAD_LETTER_QUEUE_URL"
    )
    foreign_visibility_seconds: int = Field(
        default=30, ge=0, le=43200, validation_alias="EXECUTOR_FOREIGN_VISIBILITY_SECONDS"
    )
    work_dir: Path = Field(
        default_factory=lambda: Path(tempfile.gettempdir()) / "remote-executor",
        validation_alias="EXECUTOR_WORK_DIR",
    )
    datahub_command: str | None = Field(default=None, validation_alias="EXECUTOR_DATAHUB_COMMAND")
    retry_delay_seconds: int = Field(
        default=30, ge=1, le=900, validation_alias="EXECUTOR_RETRY_DELAY_SECONDS"
    )
    report_max_chars: int = Field(
        default=800_000, ge=10_000, validation_alias="EXECUTOR_REPORT_MAX_CHARS"
    )
    child_env_passthrough: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias="EXECUTOR_CHILD_ENV_PASSTHROUGH"
    )
    require_gms_input: bool = Field(default=True, validation_alias="EXECUTOR_REQUIRE_GMS_INPUT")

    @field_validator("secrets", mode="before")
    @classmethod
    def _parse_secrets(cls, value: object) -> object:
        if isinstance(value, str):
            return parse_name_map(value, "EXECUTOR_SECRETS")
        return value

    @field_validator("secrets")
    @classmethod
    def _check_refs(cls, value: dict[str, str]) -> dict[str, str]:
        for name, ref in value.items():
            try:
                SecretRef.parse(ref)
            except ConfigurationError as exc:
                raise ValueError(f"{name}: {exc}") from exc
        return value

    @field_validator("child_env_passthrough", "secret_sources", mode="before")
    @classmethod
    def _parse_names(cls, value: object) -> object:
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    @field_validator("secret_sources")
    @classmethod
    def _check_sources(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in SOURCE_NAMES]
        if unknown or len(set(value)) != len(value):
            raise ValueError(
                f"{','.join(value)} is not an order of "
                f"{', '.join(SOURCE_NAMES)} (each at most once)"
            )
        return value

    @model_validator(mode="after")
    def _timeout_fits_the_visibility_cap(self) -> Settings:
        limit = max_task_seconds(self.lease_seconds)
        if self.task_timeout_seconds > limit:
            raise ValueError(
                f"EXECUTOR_TASK_TIMEOUT_SECONDS={self.task_timeout_seconds:g} is longer than a "
                f"task can hold its message: SQS keeps a message invisible for at most 12 h "
                f"after its receipt, and the executor needs one lease "
                f"(EXECUTOR_LEASE_SECONDS={self.lease_seconds}) to stop, report and delete it; "
                f"set it to {limit:g} or less"
            )
        return self

    def worker_config(self) -> WorkerConfig:
        """The worker's own knobs."""
        return WorkerConfig(
            worker_id=self.worker_id,
            max_concurrent_tasks=self.max_concurrent_tasks,
            lease_seconds=self.lease_seconds,
            report_interval_seconds=self.report_interval_seconds,
            foreign_visibility_seconds=self.foreign_visibility_seconds,
            max_attempts=self.max_attempts,
            shutdown_grace_seconds=self.shutdown_grace_seconds,
            signal_poll_seconds=self.signal_poll_seconds,
            kill_grace_seconds=self.kill_grace_seconds,
            keep_task_dirs=self.keep_task_dirs,
            retry_delay_seconds=self.retry_delay_seconds,
            require_gms_input=self.require_gms_input,
        )

    def require_queue_url(self) -> str:
        """The queue URL, or a ConfigurationError that says how to set it."""
        if not self.queue_url:
            raise ConfigurationError(
                "no queue URL: set EXECUTOR_QUEUE_URL (or --queue-url), "
                "e.g. https://sqs.eu-west-1.amazonaws.com/123456789012/datahub-executor"
            )
        return self.queue_url

    def child_environment(self, environ: Mapping[str, str]) -> dict[str, str]:
        """The part of the worker's environment that every ingestion subprocess inherits."""
        names = (*CHILD_ENV_PASSTHROUGH, *self.child_env_passthrough)
        inherited = {name: environ[name] for name in names if name in environ}
        return {**CHILD_ENV_DEFAULTS, **inherited}
