"""The SecretResolver role: names in, values out, or an error naming what is missing."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol


class SecretResolver(Protocol):
    """Resolves secret names to values, fresh for each task."""

    def resolve(self, names: Iterable[str]) -> dict[str, str]:
        """Values for every name; MissingSecretError naming those no source has."""
        ...

    def resolve_available(self, names: Iterable[str]) -> dict[str, str]:
        """Values for the names a source has; the rest are left out, without error."""
        ...

    def configured_names(self) -> list[str]:
        """The names this resolver knows about, for ``executor check``."""
        ...

    def describe(self) -> str:
        """Where values come from, in words, for error messages."""
        ...
