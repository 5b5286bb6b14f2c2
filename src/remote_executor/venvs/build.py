"""One environment: what names it (``BuildSpec``, whose hash is the cache key) and how
it is built and verified."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from remote_executor.errors import VenvError
from remote_executor.venvs import packages
from remote_executor.venvs.facts import FactsStore
from remote_executor.venvs.installer import Installer, Stopper


@dataclass(frozen=True)
class BuildSpec:
    """Exactly one environment."""

    python: str
    version: str
    extras: tuple[str, ...]
    requirements: tuple[str, ...]
    constraints: str

    @property
    def key(self) -> str:
        """The cache key."""
        text = json.dumps(
            [self.python, self.version, self.extras, self.requirements, self.constraints]
        )
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]

    @property
    def requirement(self) -> str:
        """The CLI with its extras, as the installer takes it."""
        extras = f"[{','.join(self.extras)}]" if self.extras else ""
        return f"{packages.PACKAGE}{extras}=={self.version}"

    def describe(self) -> str:
        """How a log line names it."""
        more = f" + {', '.join(self.requirements)}" if self.requirements else ""
        return self.requirement + more


def build_environment(
    installer: Installer,
    facts_store: FactsStore,
    spec: BuildSpec,
    facts: packages.PackageFacts,
    into: Path,
    *,
    say: Callable[[str], None],
    stopper: Stopper,
) -> dict[str, Any]:
    """Build ``spec`` at ``into`` and verify it; its record."""
    started = time.monotonic()
    say(f"Installing {spec.describe()} into a new environment {spec.key} ...")
    python = installer.create(into, say, stopper)
    constraints = facts_store.constraints_file(facts)
    installer.install(python, [spec.requirement], say, stopper, constraints=constraints)
    if spec.requirements:
        say(f"Installing extra_pip_requirements: {', '.join(spec.requirements)} ...")
        installer.install(python, list(spec.requirements), say, stopper)
    printed = installer.execute([str(into / "bin" / "datahub"), "version"], lambda _: None, stopper)
    if f"DataHub CLI version: {spec.version}" not in printed:
        raise VenvError(
            f"the environment built for {spec.describe()} runs another CLI: {printed.strip()[:300]}"
        )
    seconds = time.monotonic() - started
    say(f"Installed {spec.describe()} in {seconds:.1f} s.")
    return {
        "spec": spec.describe(),
        "cli_version": spec.version,
        "extras": spec.extras,
        "requirements": spec.requirements,
        "python": spec.python,
        "constraints": spec.constraints,
        "built_at": time.time(),
        "build_seconds": round(seconds, 3),
    }
