"""The sources of one executor in their order: each name comes from the first that has it."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import structlog

from remote_executor.errors import MissingSecretError
from remote_executor.secrets.base import SecretResolver

log = structlog.get_logger(__name__)

SOURCE_NAMES = ("aws", "file", "env")


class Resolved(NamedTuple):
    """The values of one task, and which source each name came from."""

    values: dict[str, str]
    origins: dict[str, str]

    def describe(self) -> str:
        """``A (aws), B (file)``: names and sources, never values."""
        return ", ".join(f"{name} ({source})" for name, source in sorted(self.origins.items()))


class SecretSources:
    """Asks each SecretResolver in turn for the names still unresolved."""

    def __init__(self, resolvers: Sequence[SecretResolver]) -> None:
        self.resolvers = list(resolvers)

    def resolve(self, required: Iterable[str], optional: Iterable[str] = ()) -> Resolved:
        """Values for every required name and for the optional names some source has.

        MissingSecretError names each required name no source has, and where each
        source looked; a name a source has but cannot read raises from that source.
        """
        needed = set(required)
        left = sorted(needed | set(optional))
        values: dict[str, str] = {}
        origins: dict[str, str] = {}
        started = time.monotonic()
        for resolver in self.resolvers:
            if not left:
                break
            found = resolver.lookup(left)
            values.update(found)
            origins.update(dict.fromkeys(found, resolver.label))
            left = [name for name in left if name not in found]
        missing = [name for name in left if name in needed]
        if missing:
            raise MissingSecretError(missing, self._tried(missing))
        resolved = Resolved(values, origins)
        if values:
            log.info(
                "secrets.resolved",
                secrets=resolved.describe(),
                duration_seconds=round(time.monotonic() - started, 3),
            )
        return resolved

    def _tried(self, names: list[str]) -> str:
        if not self.resolvers:
            return "no source is configured (EXECUTOR_SECRET_SOURCES is empty)"

        def looked(name: str) -> str:
            return "; ".join(resolver.missed(name) for resolver in self.resolvers)

        if len(names) == 1:
            return looked(names[0])
        return " - ".join(f"for {name}: {looked(name)}" for name in names)
