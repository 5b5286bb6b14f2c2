"""A task's directory on the worker, and how long finished ones stay.

Layout: one directory per task under the work dir (``EXECUTOR_WORK_DIR``), named by
the task's identity, its request id plus attempt, so a redelivered request never
reads or overwrites the files of an earlier attempt::

    <work dir>/
      <request id, unsafe characters as _>.<attempt>/   mode 0700: logs may hold data
        ingestion.log    the child's output, redacted
        recipe.yml       the recipe as run, placeholders kept
        report.json      the CLI's structured report, redacted in place
        metadata.json    the file sink of ``executor exec``, when there is no GMS
        tmp/             the child's TMPDIR; removed when the task finishes
        .finished        written last; its mtime is when the task finished

Retention: ``prune`` keeps the ``keep`` most recently finished directories
(``EXECUTOR_KEEP_TASK_DIRS``, default 20) and removes the others, so the disk does
not fill. A directory without ``.finished`` belongs to a task still running and is
left alone, except at start-up (``include_unfinished=True``): nothing runs yet, so it
is the leftover of a worker that died mid-task and counts as finished at its own
mtime. Even then only directories holding an ``ingestion.log`` are touched, so a
work dir shared by mistake with other files loses nothing that is not ours.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Collection
from pathlib import Path

import structlog

from remote_executor.secrets import Redactor

log = structlog.get_logger(__name__)

FINISHED_MARKER = ".finished"
_LOG_NAME = "ingestion.log"


def _safe(request_id: str) -> str:
    """The request id as a file name: alphanumerics and ``-_.`` kept, anything else ``_``."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in request_id)


class TaskWorkspace:
    """The directory of one task (request id plus attempt) and the files in it."""

    def __init__(self, root: Path, request_id: str, attempt: int) -> None:
        self.root = root
        # The attempt suffix also keeps the name from ever being "." or "..".
        self.name = f"{_safe(request_id)}.{attempt}"
        self.dir = root / self.name

    @property
    def log_path(self) -> Path:
        return self.dir / _LOG_NAME

    @property
    def report_path(self) -> Path:
        return self.dir / "report.json"

    @property
    def recipe_path(self) -> Path:
        return self.dir / "recipe.yml"

    @property
    def metadata_path(self) -> Path:
        """Where the file sink of ``executor exec`` writes the metadata."""
        return self.dir / "metadata.json"

    @property
    def tmp_dir(self) -> Path:
        """The child's TMPDIR."""
        return self.dir / "tmp"

    def reset(self) -> None:
        """Start from an empty directory (0700) with ``tmp/`` and an empty log.

        A directory left by an earlier run of the same attempt is removed first: its old
        log would mislead. Raises ``OSError`` if it cannot be removed or created.
        """
        if os.path.lexists(self.dir):
            shutil.rmtree(self.dir)
        self.root.mkdir(parents=True, exist_ok=True)
        self.dir.mkdir(mode=0o700)
        # mkdir's mode passes through the umask; the directory must be 0700 whatever it is.
        self.dir.chmod(0o700)
        self.tmp_dir.mkdir()
        self.log_path.touch()

    def finish(self) -> None:
        """Drop ``tmp/`` and mark the directory finished, which makes it subject to ``prune``."""
        shutil.rmtree(self.tmp_dir, ignore_errors=True)
        (self.dir / FINISHED_MARKER).touch()

    def structured_report(self, redactor: Redactor) -> str | None:
        """The CLI's report, redacted; ``None`` if it is absent or not valid JSON.

        The file is rewritten redacted whether or not it parses: a report cut
        mid-write still holds the values it had so far, and stays on disk.
        """
        try:
            raw = self.report_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("report not read", path=str(self.report_path), error=str(exc))
            return None
        redacted = redactor.redact(raw)
        self._rewrite_report(redacted)
        try:
            json.loads(redacted)
        except ValueError:
            return None
        return redacted

    def _rewrite_report(self, text: str) -> None:
        # Replaced, not written over: a crash mid-write leaves the old file or the new one,
        # never a mix. Not fatal when it fails: the result is redacted either way, and the
        # warning says which file on disk is not.
        partial = self.report_path.with_name(self.report_path.name + ".redacting")
        try:
            partial.write_text(text, encoding="utf-8")
            partial.replace(self.report_path)
        except OSError as exc:
            log.warning("report not redacted on disk", path=str(self.report_path), error=str(exc))
            partial.unlink(missing_ok=True)


def prune(
    root: Path,
    keep: int,
    active: Collection[str] = (),
    include_unfinished: bool = False,
) -> list[Path]:
    """Remove all but the ``keep`` most recently finished task directories under ``root``.

    Directories named in ``active`` are never removed. With ``include_unfinished``
    (start-up, when nothing runs), a directory without a marker counts as finished at
    its own mtime, and those kept are marked so, to be pruned in turn later. A directory
    that cannot be removed is logged and skipped; one that vanished meanwhile is skipped.
    Returns the directories removed.
    """
    if keep < 0:
        raise ValueError(f"keep must be 0 or more, not {keep}")
    finished = _finished(root, active, include_unfinished)
    finished.sort(key=lambda item: item[1], reverse=True)
    removed: list[Path] = []
    for path, finished_at in finished[keep:]:
        # Checked again just before removing: a task may have started in it meanwhile.
        if path.name in active or _finished_at(path, include_unfinished) != finished_at:
            continue
        try:
            shutil.rmtree(path)
        except OSError as exc:
            if os.path.lexists(path):
                log.warning("task directory not removed", path=str(path), error=str(exc))
            continue
        removed.append(path)
    if include_unfinished:
        for path, finished_at in finished[:keep]:
            _adopt(path, finished_at)
    return removed


def _adopt(path: Path, finished_at: float) -> None:
    """Mark a kept leftover of a dead worker finished at its own time (and drop its tmp/),
    so that later prunes count it among the kept ones."""
    marker = path / FINISHED_MARKER
    if marker.exists():
        return
    try:
        shutil.rmtree(path / "tmp", ignore_errors=True)
        marker.touch()
        os.utime(marker, (finished_at, finished_at))
    except OSError as exc:
        log.warning("task directory not marked finished", path=str(path), error=str(exc))


def _finished(
    root: Path, active: Collection[str], include_unfinished: bool
) -> list[tuple[Path, float]]:
    """Each finished, inactive task directory directly under ``root`` with its finish time."""
    try:
        with os.scandir(root) as entries:
            # Sorted: the order of the checks, and of the logs, is the same on any file system.
            names = sorted(entry.name for entry in entries if entry.is_dir(follow_symlinks=False))
    except OSError as exc:
        if not isinstance(exc, FileNotFoundError):
            log.warning("work directory not listed", path=str(root), error=str(exc))
        return []
    found: list[tuple[Path, float]] = []
    for name in names:
        if name in active:
            continue
        finished_at = _finished_at(root / name, include_unfinished)
        if finished_at is not None:
            found.append((root / name, finished_at))
    return found


def _finished_at(path: Path, include_unfinished: bool) -> float | None:
    """When the task of ``path`` finished, or ``None`` if it has not (or is not a task)."""
    try:
        if path.is_symlink():
            return None
        try:
            return (path / FINISHED_MARKER).stat().st_mtime
        except FileNotFoundError:
            if include_unfinished and (path / _LOG_NAME).is_file():
                return path.stat().st_mtime
            return None
    except OSError:
        return None
