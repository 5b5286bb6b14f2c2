"""Secrets from the worker's own environment, as ECS injects them at deploy time.

The worker's own credentials are not recipe secrets: a recipe written in the
DataHub UI must not be able to read the worker's AWS keys or GMS token by
naming them. Those names are never resolved from here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

# The worker's credentials and configuration, never handed to a recipe by name.
RESERVED_NAMES = frozenset(
    {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "DATAHUB_GMS_TOKEN",
        "DATAHUB_ACCESS_TOKEN",
    }
)
RESERVED_PREFIX = "EXECUTOR_"


def is_reserved(name: str) -> bool:
    """Whether ``name`` is the worker's own and never resolved from its environment."""
    return name in RESERVED_NAMES or name.startswith(RESERVED_PREFIX)


class EnvSecretResolver:
    """Resolves names from the worker's environment, except its own credentials."""

    label = "env"

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def lookup(self, names: Sequence[str]) -> dict[str, str]:
        return {
            name: self._environ[name]
            for name in names
            if name in self._environ and not is_reserved(name)
        }

    def missed(self, name: str) -> str:
        if is_reserved(name) and name in self._environ:
            return f"env: {name} is the worker's own setting, not given to recipes"
        return f"env: no variable {name} in the worker's environment"

    def configured_names(self) -> list[str]:
        return []  # every variable could be one; none is listed

    def describe(self) -> str:
        return "the worker's environment"
