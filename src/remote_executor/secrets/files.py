"""Secrets as files named after them: a Kubernetes secret volume, Docker or Compose secrets.

``${DB_PASSWORD}`` reads ``<dir>/DB_PASSWORD`` (default ``/mnt/secrets``), fresh for
each task, so a secret Kubernetes updates in the volume reaches the next task.
One trailing newline is dropped: ``kubectl create secret --from-file`` and most
editors leave one that is not part of the password.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from remote_executor.errors import SecretError


class FileSecretResolver:
    """Resolves names from the files of one directory."""

    label = "file"

    def __init__(self, directory: Path) -> None:
        self._directory = directory

    def _path(self, name: str) -> Path | None:
        # Reference names hold no "/" and no "."; still, never leave the directory.
        if not name or name.startswith(".") or "/" in name or "\\" in name:
            return None
        return self._directory / name

    def lookup(self, names: Sequence[str]) -> dict[str, str]:
        values: dict[str, str] = {}
        for name in names:
            path = self._path(name)
            if path is None or not path.is_file():
                continue
            try:
                raw = path.read_bytes()
            except OSError as exc:
                raise SecretError(f"secret {name}: cannot read {path}: {exc.strerror}") from exc
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise SecretError(f"secret {name}: {path} is not UTF-8 text") from exc
            values[name] = text.removesuffix("\n").removesuffix("\r")
        return values

    def missed(self, name: str) -> str:
        if not self._directory.is_dir():
            return f"file: {self._directory} does not exist (EXECUTOR_SECRETS_DIR)"
        return f"file: no file {self._directory / name}"

    def configured_names(self) -> list[str]:
        if not self._directory.is_dir():
            return []
        # Kubernetes keeps its own ..data links beside the keys.
        return sorted(
            entry.name
            for entry in self._directory.iterdir()
            if not entry.name.startswith(".") and entry.is_file()
        )

    def describe(self) -> str:
        if not self._directory.is_dir():
            return f"{self._directory} does not exist"
        return f"files in {self._directory}"
