"""The SecretResolver role: one source of secret values (Secrets Manager, files, environment).

A resolver looks up the names it has and leaves the others to the next source;
a name it has but cannot read is a SecretError that names the secret and the
source, never a value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class SecretResolver(Protocol):
    """One source of values, asked in the order of EXECUTOR_SECRET_SOURCES."""

    @property
    def label(self) -> str:
        """The source's name in EXECUTOR_SECRET_SOURCES: ``aws``, ``file``, ``env``."""
        ...

    def lookup(self, names: Sequence[str]) -> dict[str, str]:
        """Values for the names this source has; SecretError for one it has but cannot read."""
        ...

    def missed(self, name: str) -> str:
        """Where this source looked for ``name``, for the error when no source had it."""
        ...

    def configured_names(self) -> list[str]:
        """The names this source is known to hold, for ``executor check``."""
        ...

    def describe(self) -> str:
        """What this source reads, in words."""
        ...
