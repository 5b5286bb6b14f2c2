"""The facts of each release used so far (extras, constraints), kept under the cache root.

A release is read once, from the package itself installed without dependencies into
a scratch directory; the facts are kept as JSON (and the constraints as the file uv
reads), since a release never changes.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from packaging.version import Version

from remote_executor.errors import VenvError
from remote_executor.venvs.installer import Installer, Stopper
from remote_executor.venvs.packages import PACKAGE, PackageFacts, read_unpacked


class FactsStore:
    """``<root>/<version>.json`` per release, and its ``constraints-<digest>.txt``."""

    def __init__(self, root: Path, installer: Installer) -> None:
        self.root = root
        self._installer = installer

    def _path(self, version: str) -> Path:
        return self.root / f"{Version(version)}.json"

    def known(self, version: str) -> PackageFacts | None:
        """The facts of ``version`` if they were read before."""
        try:
            data = json.loads(self._path(version).read_text(encoding="utf-8"))
            return PackageFacts(str(data["version"]), tuple(data["extras"]), data["constraints"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def fetch(self, version: str, say: Callable[[str], None], stopper: Stopper) -> PackageFacts:
        """Read ``version`` from the package itself, and keep what it says."""
        self.root.mkdir(parents=True, exist_ok=True)
        say(f"Reading the extras and constraints of {PACKAGE} {version} ...")
        scratch = Path(tempfile.mkdtemp(prefix="release-", dir=self.root))
        try:
            self._installer.install(
                Path(self._installer.python),
                [f"{PACKAGE}=={version}"],
                say,
                stopper,
                no_deps=True,
                target=scratch,
            )
            facts = read_unpacked(scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        if facts is None:
            raise VenvError(f"the installer put no {PACKAGE} {version} in {scratch}")
        if not facts.constraints:
            say(
                f"{PACKAGE} {version} ships no constraints.txt: its dependencies are resolved "
                "without one."
            )
        record = {
            "version": facts.version,
            "extras": facts.extras,
            "constraints": facts.constraints,
        }
        temporary = self._path(version).with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(record), encoding="utf-8")
        temporary.replace(self._path(version))
        return facts

    def constraints_file(self, facts: PackageFacts) -> Path | None:
        """The release's constraints as a file for uv, or None if it ships none."""
        if not facts.constraints:
            return None
        path = self.root / f"constraints-{facts.constraints_digest}.txt"
        if not path.is_file():
            self.root.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(f".{os.getpid()}.tmp")
            temporary.write_text(facts.constraints, encoding="utf-8")
            temporary.replace(path)
        return path
