"""What a release of ``acryl-datahub`` says about itself: the extras it provides and the
``constraints.txt`` it ships (``datahub/constraints.txt``, every dependency pinned).

For the CLI installed beside the executor these are read from its installed metadata;
for any other release, from the package itself, installed once without dependencies
into a directory of facts (``Installer.fetch_package``) and kept: a release never changes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from email.parser import Parser
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PACKAGE = "acryl-datahub"
CONSTRAINTS = Path("datahub") / "constraints.txt"


@dataclass(frozen=True)
class PackageFacts:
    """One release: its version, its extras, its constraints (empty if it ships none)."""

    version: str
    extras: tuple[str, ...]
    constraints: str

    @property
    def constraints_digest(self) -> str:
        """What the cache key holds of the constraints."""
        return hashlib.sha256(self.constraints.encode("utf-8")).hexdigest()[:16]


def read_unpacked(site: Path) -> PackageFacts | None:
    """The facts of the single ``acryl-datahub`` unpacked under ``site``, if there is one."""
    found = sorted(site.glob("acryl_datahub-*.dist-info/METADATA"))
    if not found:
        return None
    headers = Parser().parsestr(found[0].read_text(encoding="utf-8"), headersonly=True)
    constraints = site / CONSTRAINTS
    return PackageFacts(
        version=str(headers["Version"]),
        extras=tuple(headers.get_all("Provides-Extra") or ()),
        constraints=constraints.read_text(encoding="utf-8") if constraints.is_file() else "",
    )


def installed() -> PackageFacts | None:
    """The facts of the ``acryl-datahub`` installed beside the executor, if any."""
    try:
        dist = metadata.distribution(PACKAGE)
    except metadata.PackageNotFoundError:
        return None
    shipped = dist.locate_file(CONSTRAINTS)
    return PackageFacts(
        version=dist.version,
        extras=tuple(dist.metadata.get_all("Provides-Extra") or ()),
        constraints=Path(str(shipped)).read_text(encoding="utf-8")
        if Path(str(shipped)).is_file()
        else "",
    )


def missing_natively(extras: list[str]) -> list[str]:
    """The requirements of ``extras`` that the executor's own environment lacks."""
    try:
        requires = metadata.requires(PACKAGE) or []
    except metadata.PackageNotFoundError:
        return [f"{PACKAGE}[{extra}]" for extra in extras]
    missing = []
    for line in requires:
        requirement = Requirement(line)
        marker = requirement.marker
        if marker is None or marker.evaluate({"extra": ""}):
            continue  # a dependency of the package itself, not of an extra
        for extra in extras:
            if not marker.evaluate({"extra": canonicalize_name(extra)}):
                continue
            if not _satisfied(requirement):
                missing.append(str(requirement).split(";")[0].strip())
            break
    return missing


def _satisfied(requirement: Requirement) -> bool:
    try:
        version = metadata.version(requirement.name)
    except metadata.PackageNotFoundError:
        return False
    return requirement.specifier.contains(version, prereleases=True)
