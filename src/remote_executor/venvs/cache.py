"""The directory of built environments: one per key, each locked while used.

Layout under the root (``EXECUTOR_VENV_DIR``)::

    <key>/                  a ready environment; holds RECORD, written before the rename
    <key>.lock              flock: shared while a task uses it, exclusive to build or evict
    .building/<key>.<pid>   an environment being built; renamed to <key> once verified
    builds.jsonl            one line per build, for ``executor venvs list`` and the tests

An environment is ready when its directory exists, and a directory appears only by
a rename after its build was verified, so a build that dies midway leaves at most a
``.building`` directory that the next build of that key removes. A task holds the
shared lock for as long as it runs, and eviction takes the exclusive lock without
waiting, so an environment in use is never removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

RECORD = "executor-venv.json"
USED = ".last-used"
POLL_SECONDS = 0.2


@dataclass(frozen=True)
class Entry:
    """One ready environment, as ``executor venvs list`` shows it."""

    key: str
    path: Path
    record: dict[str, Any]
    last_used: float
    in_use: bool

    @property
    def size_bytes(self) -> int:
        """Its size on disk, measured when it was built."""
        return int(self.record.get("size_bytes", 0))


def tree_size(path: Path) -> int:
    """Bytes under ``path``, each file once (uv links files from its cache)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                stat = os.lstat(os.path.join(folder, name))
            except OSError:
                continue
            if (stat.st_dev, stat.st_ino) not in seen:
                seen.add((stat.st_dev, stat.st_ino))
                total += stat.st_size
    return total


def read_record(path: Path) -> dict[str, Any] | None:
    """The record of the environment at ``path``, if it is one of ours."""
    try:
        record = json.loads((path / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _lock(handle: IO[bytes], how: int, cancelled: Callable[[], str | None]) -> None:
    """Take the lock, polling so that a cancelled task stops waiting."""
    while True:
        try:
            fcntl.flock(handle, how | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            reason = cancelled()
            if reason is not None:
                raise InterruptedError(reason) from None
            time.sleep(POLL_SECONDS)


class VenvCache:
    """Ready environments under ``root``, built at most once each."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        """Where the environment of ``key`` lives once ready."""
        return self.root / key

    @contextlib.contextmanager
    def hold(
        self,
        key: str,
        build: Callable[[Path], dict[str, Any]],
        cancelled: Callable[[], str | None] = lambda: None,
    ) -> Iterator[tuple[dict[str, Any], bool]]:
        """The record of ``key``'s environment, built first by ``build`` if none is ready;
        yields (record, built now) with the environment locked in use until exit.

        ``build`` makes the environment in the directory it is given and returns its
        record. Two holders of one key wait for each other: the second finds it ready.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / f"{key}.lock", "ab") as handle:
            built = False
            while True:
                _lock(handle, fcntl.LOCK_SH, cancelled)
                record = read_record(self.path(key))
                if record is not None:
                    break
                _lock(handle, fcntl.LOCK_EX, cancelled)  # replaces the shared lock
                if read_record(self.path(key)) is None:
                    self._build(key, build)
                    built = True
                # Back to shared (not atomic in flock): the loop checks it is still there.
            (self.path(key) / USED).touch()
            try:
                yield record, built
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _build(self, key: str, build: Callable[[Path], dict[str, Any]]) -> None:
        building = self.root / ".building"
        building.mkdir(exist_ok=True)
        for stale in building.glob(f"{key}.*"):  # a build that died; we hold the lock
            shutil.rmtree(stale, ignore_errors=True)
        target = self.path(key)
        if target.exists():  # a directory without a record is no environment
            shutil.rmtree(target)
        into = building / f"{key}.{os.getpid()}"
        started = time.monotonic()
        try:
            record = build(into)
            record.update(key=key, size_bytes=tree_size(into))
            (into / RECORD).write_text(json.dumps(record, indent=1), encoding="utf-8")
            os.rename(into, target)
        except BaseException:
            shutil.rmtree(into, ignore_errors=True)
            raise
        line = {"key": key, "seconds": round(time.monotonic() - started, 3), "at": time.time()}
        with open(self.root / "builds.jsonl", "a", encoding="utf-8") as log:
            log.write(json.dumps({**line, "spec": record.get("spec")}) + "\n")

    def builds(self) -> list[dict[str, Any]]:
        """Every build this cache has recorded, oldest first."""
        try:
            lines = (self.root / "builds.jsonl").read_text(encoding="utf-8").splitlines()
        except OSError:
            return []
        return [json.loads(line) for line in lines if line.strip()]

    def entries(self) -> list[Entry]:
        """The ready environments, least recently used first."""
        found = []
        if not self.root.is_dir():
            return []
        for path in self.root.iterdir():
            record = read_record(path) if path.is_dir() and not path.name.startswith(".") else None
            if record is None:
                continue
            try:
                used = (path / USED).stat().st_mtime
            except OSError:
                used = float(record.get("built_at", 0))
            found.append(Entry(path.name, path, record, used, self._in_use(path.name)))
        return sorted(found, key=lambda entry: entry.last_used)

    def _in_use(self, key: str) -> bool:
        with self._try_exclusive(key) as free:
            return not free

    @contextlib.contextmanager
    def _try_exclusive(self, key: str) -> Iterator[bool]:
        with open(self.root / f"{key}.lock", "ab") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def prune(self, max_bytes: int, keep: frozenset[str] = frozenset()) -> list[Entry]:
        """Remove least recently used environments until the rest fit in ``max_bytes``;
        one in use, or in ``keep``, is never removed. Returns what was removed."""
        entries = self.entries()
        total = sum(entry.size_bytes for entry in entries)
        removed = []
        for entry in entries:
            if total <= max_bytes:
                break
            if entry.key in keep or not self.remove(entry.key):
                continue
            total -= entry.size_bytes
            removed.append(entry)
        return removed

    def remove(self, key: str) -> bool:
        """Remove ``key``'s environment unless it is in use; whether it was removed."""
        with self._try_exclusive(key) as free:
            if not free:
                return False
            trash = self.root / ".building" / f"{key}.removing-{uuid.uuid4().hex[:8]}"
            trash.parent.mkdir(exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                os.rename(self.path(key), trash)  # gone at once, deleted after
            shutil.rmtree(trash, ignore_errors=True)
            return True
