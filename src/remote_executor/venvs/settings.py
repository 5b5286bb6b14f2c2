"""The settings of the CLI environments, a part of ``Settings`` (which inherits them)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode

from remote_executor.errors import ConfigurationError, VenvError
from remote_executor.venvs.asks import VersionAsk, parse_version
from remote_executor.venvs.environments import VenvConfig


def parse_prewarm(raw: str) -> list[tuple[str, VersionAsk]]:
    """``postgres@1.2.0.5,snowflake@latest`` as (plugin, version) pairs."""
    pairs = []
    for raw_item in raw.split(","):
        item = raw_item.strip()
        if not item:
            continue
        plugin, sep, version = item.partition("@")
        try:
            ask = parse_version(version)
        except VenvError as exc:
            raise ConfigurationError(f"EXECUTOR_PREWARM entry {item!r}: {exc}") from None
        if not sep or not plugin.strip() or ask.kind.value in ("native", "bundled"):
            raise ConfigurationError(
                f"EXECUTOR_PREWARM entry {item!r} is not PLUGIN@VERSION with a release or "
                "latest as the version, e.g. postgres@1.2.0.5,snowflake@latest"
            )
        pairs.append((plugin.strip(), ask))
    return pairs


class VenvSettings(BaseSettings):
    """Where environments live, how large the cache may grow, where packages come from."""

    venv_dir: Path | None = Field(default=None, validation_alias="EXECUTOR_VENV_DIR")
    venv_cache_max_gb: float = Field(
        default=10.0, gt=0, validation_alias="EXECUTOR_VENV_CACHE_MAX_GB"
    )
    allow_install: bool = Field(default=True, validation_alias="EXECUTOR_ALLOW_INSTALL")
    latest_ttl_seconds: float = Field(
        default=3600.0, ge=0, validation_alias="EXECUTOR_LATEST_TTL_SECONDS"
    )
    prewarm: Annotated[list[tuple[str, VersionAsk]], NoDecode] = Field(
        default_factory=list, validation_alias="EXECUTOR_PREWARM"
    )
    wheelhouse: Path | None = Field(default=None, validation_alias="EXECUTOR_WHEELHOUSE")
    bundled_venv_dir: Path = Field(
        default=Path("/opt/datahub/venvs"),
        validation_alias=AliasChoices("EXECUTOR_BUNDLED_VENV_DIR", "DATAHUB_BUNDLED_VENV_PATH"),
    )

    @field_validator("prewarm", mode="before")
    @classmethod
    def _parse_prewarm(cls, value: object) -> object:
        return parse_prewarm(value) if isinstance(value, str) else value

    def venv_config(self, work_dir: Path) -> VenvConfig:
        """The environments' settings; the cache defaults to ``<work dir>/venvs``."""
        return VenvConfig(
            root=self.venv_dir or work_dir / "venvs",
            max_bytes=int(self.venv_cache_max_gb * 1024**3),
            allow_install=self.allow_install,
            latest_ttl_seconds=self.latest_ttl_seconds,
            bundled_dir=self.bundled_venv_dir,
        )
