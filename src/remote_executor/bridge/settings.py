"""Every setting of ``executor bridge``, and the environment variable it reads."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from remote_executor.bridge.forward import SQS_MAX_MESSAGE_BYTES
from remote_executor.bridge.sweep import SweepLimits
from remote_executor.errors import ConfigurationError
from remote_executor.settings import parse_name_map
from remote_executor.settings_common import CommonSettings

QUEUES_EXAMPLE = (
    "remote=https://sqs.eu-west-1.amazonaws.com/123456789012/datahub-executor,"
    "team-b=https://sqs.eu-west-1.amazonaws.com/123456789012/team-b"
)


class BridgeSettings(CommonSettings):
    """The bridge's configuration: which executor ids go to which queue, and the sweeper."""

    queues: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict, validation_alias="EXECUTOR_BRIDGE_QUEUES"
    )
    consumer_id: str = Field(
        default="remote-executor-bridge",
        min_length=1,
        validation_alias="EXECUTOR_BRIDGE_CONSUMER_ID",
    )
    lookback_days: int | None = Field(
        default=None, ge=0, le=30, validation_alias="EXECUTOR_BRIDGE_LOOKBACK_DAYS"
    )
    max_message_bytes: int = Field(
        default=SQS_MAX_MESSAGE_BYTES,
        ge=1024,
        le=1_048_576,
        validation_alias="EXECUTOR_SQS_MAX_MESSAGE_BYTES",
    )
    stale_running_seconds: float = Field(
        default=1800.0, gt=0, validation_alias="EXECUTOR_STALE_RUNNING_SECONDS"
    )
    pending_timeout_seconds: float = Field(
        default=86400.0, gt=0, validation_alias="EXECUTOR_PENDING_TIMEOUT_SECONDS"
    )
    sweep_interval_seconds: float = Field(
        default=60.0, ge=0, validation_alias="EXECUTOR_SWEEP_INTERVAL_SECONDS"
    )

    @field_validator("queues", mode="before")
    @classmethod
    def _parse_queues(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return parse_name_map(value, "EXECUTOR_BRIDGE_QUEUES")
            except ConfigurationError as exc:
                raise ValueError(
                    str(exc).split(";")[0] + f"; expected e.g. {QUEUES_EXAMPLE}"
                ) from exc
        return value

    def require_queues(self) -> dict[str, str]:
        """The executor id to queue URL map, or a ConfigurationError that says how to set it."""
        if not self.queues:
            raise ConfigurationError(
                "no queues: set EXECUTOR_BRIDGE_QUEUES (or --queue) to executor ids and the "
                f"queues their workers read, e.g. {QUEUES_EXAMPLE}"
            )
        return self.queues

    def sweep_limits(self) -> SweepLimits:
        return SweepLimits(self.stale_running_seconds, self.pending_timeout_seconds)
