"""In-memory twin of a SecretResolver, for unit tests and ``executor exec --secret``."""

from __future__ import annotations

from collections.abc import Iterable

from remote_executor.errors import MissingSecretError


class StaticSecretResolver:
    """Resolves names from a fixed mapping."""

    def __init__(self, values: dict[str, str]) -> None:
        self._values = dict(values)
        self.calls: list[list[str]] = []

    def resolve(self, names: Iterable[str]) -> dict[str, str]:
        wanted = sorted(set(names))
        self.calls.append(wanted)
        missing = [name for name in wanted if name not in self._values]
        if missing:
            raise MissingSecretError(missing, self.describe())
        return {name: self._values[name] for name in wanted}

    def resolve_available(self, names: Iterable[str]) -> dict[str, str]:
        return {name: self._values[name] for name in set(names) if name in self._values}

    def configured_names(self) -> list[str]:
        return sorted(self._values)

    def describe(self) -> str:
        if not self._values:
            return "no secrets are configured"
        return f"configured: {', '.join(sorted(self._values))}"
