"""What a request asks of its environment: which CLI version, which extras, which
packages. Pure: it reads no file, no index and no environment.

A request names the CLI version in ``args.version``: ``native`` (or nothing, or
``default``) for the CLI installed beside the executor, ``latest``, ``bundled`` for
an environment prebuilt in the image, or a version such as ``1.2.0.5``. The plugins
are the recipe's source and sink types and ``extra_pip_plugins``; each becomes an
``acryl-datahub`` extra when the package lists one by that name (its metadata
says, see ``packages``). A source type written as a Python path (``my_pkg.MySource``)
is a class of the user's own and needs no extra.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from remote_executor.errors import VenvError

NATIVE_WORDS = frozenset({"", "native", "default"})
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


class Kind(enum.Enum):
    """Which CLI a request asks for."""

    NATIVE = "native"
    PINNED = "pinned"
    LATEST = "latest"
    BUNDLED = "bundled"


@dataclass(frozen=True)
class VersionAsk:
    """The parsed ``args.version``; ``version`` is set for PINNED only."""

    kind: Kind
    version: str | None = None

    def describe(self) -> str:
        """How the report names it."""
        return self.version if self.version else self.kind.value


def parse_version(value: str | None) -> VersionAsk:
    """``args.version`` as a VersionAsk; a value that is no version raises VenvError."""
    text = (value or "").strip()
    word = text.lower()
    if word in NATIVE_WORDS:
        return VersionAsk(Kind.NATIVE)
    if word in (Kind.LATEST.value, Kind.BUNDLED.value):
        return VersionAsk(Kind(word))
    try:
        return VersionAsk(Kind.PINNED, str(Version(text)))
    except InvalidVersion:
        raise VenvError(
            f"CLI version {value!r} (args.version) is not a version: use a release of "
            "acryl-datahub such as 1.2.0.5, or native, latest or bundled"
        ) from None


def plugin_names(
    source_type: str, sink_type: str | None, extra_pip_plugins: Iterable[str]
) -> list[str]:
    """The plugins a run needs, in order and once each; a Python-path source is none."""
    names = [] if "." in source_type else [source_type]
    if sink_type and "." not in sink_type:
        names.append(sink_type)
    names.extend(str(name).strip() for name in extra_pip_plugins)
    seen: dict[str, None] = {}
    for name in names:
        if name:
            seen.setdefault(name, None)
    return list(seen)


def choose_extras(plugins: Iterable[str], provided: Collection[str]) -> tuple[list[str], list[str]]:
    """The extras ``acryl-datahub`` provides among ``plugins`` (sorted), and the rest.

    Extras compare by their normalised name (PEP 685), as installers do.
    """
    known = {canonicalize_name(extra): extra for extra in provided}
    extras: set[str] = set()
    others: list[str] = []
    for plugin in plugins:
        match = known.get(canonicalize_name(plugin))
        if match is None:
            others.append(plugin)
        else:
            extras.add(match)
    return sorted(extras), others


def expand_requirements(requirements: Iterable[str], variables: Mapping[str, str]) -> list[str]:
    """``extra_pip_requirements`` with ``${VAR}`` taken from ``extra_env_vars`` only, each
    checked to be one PEP 508 requirement (never an installer option)."""
    expanded = []
    for raw in requirements:
        missing = [a or b for a, b in _REFERENCE.findall(raw) if (a or b) not in variables]
        if missing:
            raise VenvError(
                f"extra_pip_requirements entry {raw!r} references ${{{missing[0]}}}, which "
                "the request's extra_env_vars do not set (only they are expanded here)"
            )
        text = _REFERENCE.sub(lambda m: variables[m.group(1) or m.group(2)], raw).strip()
        try:
            Requirement(text)
        except InvalidRequirement as exc:
            raise VenvError(
                f"extra_pip_requirements entry {raw!r} is not a requirement "
                f"(such as 'pandas==2.2.3' or 'pkg @ https://host/pkg.whl'): {exc}"
            ) from None
        expanded.append(text)
    return expanded
