"""The settings every long-running process of this package shares (the worker's Settings
and the bridge's BridgeSettings): where GMS is and its token, the AWS region, the health
port and logging."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from remote_executor.errors import ConfigurationError


class CommonSettings(BaseSettings):
    """GMS, AWS region, health endpoints and logs."""

    model_config = SettingsConfigDict(populate_by_name=True, extra="ignore")

    gms_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATAHUB_GMS_URL", "DATAHUB_BASE_URL")
    )
    gms_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("DATAHUB_GMS_TOKEN", "DATAHUB_ACCESS_TOKEN"),
    )
    # boto3 itself reads only AWS_DEFAULT_REGION; ECS and most docs set AWS_REGION.
    aws_region: str | None = Field(
        default=None, validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION")
    )
    gms_retry_seconds: float = Field(
        default=60.0, ge=0, validation_alias="EXECUTOR_GMS_RETRY_SECONDS"
    )
    health_port: int = Field(default=8080, ge=0, le=65535, validation_alias="EXECUTOR_HEALTH_PORT")
    log_format: Literal["auto", "console", "json"] = Field(
        default="auto", validation_alias="EXECUTOR_LOG_FORMAT"
    )
    log_level: str = Field(default="INFO", validation_alias="EXECUTOR_LOG_LEVEL")

    @field_validator("gms_url")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @property
    def token(self) -> str | None:
        """The GMS token in clear, for the HTTP client and the child's sink only."""
        return self.gms_token.get_secret_value() if self.gms_token else None

    def require_gms_url(self) -> str:
        """The GMS URL, or a ConfigurationError that says how to set it."""
        if not self.gms_url:
            raise ConfigurationError(
                "no GMS URL: set DATAHUB_GMS_URL (or --gms-url), "
                "e.g. https://<company>.acryl.io/gms"
            )
        return self.gms_url
