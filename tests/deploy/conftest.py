"""The deployment files, checked by the linters users trust, from .venv-tools (`make tools`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from remote_executor.cli import load_settings
from remote_executor.settings import Settings

REPO = Path(__file__).resolve().parents[2]
TOOLS_BIN = REPO / ".venv-tools" / "bin"


def tool(name: str) -> str:
    """The path of a linter from .venv-tools, else from PATH; skips the test without it."""
    for candidate in (TOOLS_BIN / name, shutil.which(name)):
        if candidate and Path(candidate).exists():
            return str(candidate)
    pytest.skip(
        f"{name} not found: run `make tools` (installs deploy/tools-requirements.txt into "
        ".venv-tools); `make test` does it"
    )


def checkov(framework: str, *target: str) -> dict[str, Any]:
    """checkov's JSON verdict on ``target`` (``--file F`` or ``--directory D``), offline.

    Without ``--quiet``, so that the passed and skipped checks are listed too.
    """
    done = subprocess.run(
        [tool("checkov"), *target, "--framework", framework, "--skip-download", "--output", "json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    verdict: dict[str, Any] = json.loads(done.stdout)
    assert verdict["summary"]["failed"] == 0, done.stdout
    assert verdict["summary"]["parsing_errors"] == 0, done.stdout
    return verdict


def worker_settings(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings `executor run` builds in a container whose whole environment is ``env``."""
    for name in list(os.environ):
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings()
