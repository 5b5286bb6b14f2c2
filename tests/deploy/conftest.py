"""The deployment files, checked by the linters users trust, from .venv-tools (`make tools`)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

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
