"""In-memory twin of a SecretResolver, for unit tests."""

from __future__ import annotations

from collections.abc import Sequence


class MemorySecretResolver:
    """Resolves names from a fixed mapping, and records what it was asked."""

    def __init__(self, values: dict[str, str], label: str = "memory") -> None:
        self._values = dict(values)
        self._label = label
        self.calls: list[list[str]] = []

    @property
    def label(self) -> str:
        return self._label

    def lookup(self, names: Sequence[str]) -> dict[str, str]:
        self.calls.append(sorted(names))
        return {name: self._values[name] for name in names if name in self._values}

    def missed(self, name: str) -> str:
        return f"{self._label}: not among {self.describe()}"

    def configured_names(self) -> list[str]:
        return sorted(self._values)

    def describe(self) -> str:
        if not self._values:
            return "no values"
        return f"values for {', '.join(sorted(self._values))}"
