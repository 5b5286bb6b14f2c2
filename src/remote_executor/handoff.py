"""How resolved values reach the ``datahub`` CLI: the stdin envelope where it reads one,
else environment variables.

With ``-c -`` and ``{"__recipe_yaml__": ..., "__secrets__": {...}}`` on stdin (DataHub
CLI 1.x), the values are neither in the child's environment listing
(``/proc/<pid>/environ``) nor inherited by the processes it starts, and the CLI
registers them with its own masking. Environment variables are the baseline: every
CLI version and every wrapper command reads them.

Support is asked of the CLI itself (``ingest run --help`` names the envelope), once
per CLI version: the answer is kept until the command's executable changes, which
is what installing another version does to its entry script.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import structlog

from remote_executor.processes import CHILDREN

log = structlog.get_logger(__name__)

ENVELOPE_MARKER = "__recipe_yaml__"
PROBE_TIMEOUT_SECONDS = 120.0


@dataclass(frozen=True)
class Delivery:
    """What one run of the CLI gets: its ``-c`` argument, its stdin, its extra variables."""

    config_argument: str
    stdin: bytes | None
    env: dict[str, str]
    how: str


def _fingerprint(command: tuple[str, ...]) -> tuple[object, ...]:
    # The first word that names a file: a script run by an interpreter counts as the CLI.
    for word in reversed(command):
        found = shutil.which(word) or (word if os.path.isfile(word) else None)
        if found:
            stat = os.stat(found)
            return (os.path.realpath(found), stat.st_size, stat.st_mtime_ns)
    return command


class Handoff:
    """Chooses, per CLI version, how a task's values are handed to the child."""

    def __init__(
        self,
        command: tuple[str, ...],
        mode: Literal["auto", "env"] = "auto",
        probe_timeout_seconds: float = PROBE_TIMEOUT_SECONDS,
    ) -> None:
        self._command = command
        self._mode = mode
        self._timeout = probe_timeout_seconds
        self._lock = threading.Lock()
        self._answers: dict[tuple[object, ...], bool] = {}

    def reads_envelope(self, command: tuple[str, ...] | None = None) -> bool:
        """Whether the CLI (``command``, else the installed one) reads the stdin envelope;
        probed once per CLI version."""
        if self._mode == "env":
            return False
        command = command or self._command
        key = _fingerprint(command)
        with self._lock:  # one probe at a time: tasks starting together wait for it
            if key not in self._answers:
                self._answers[key] = self._probe(command)
            return self._answers[key]

    def _probe(self, command: tuple[str, ...]) -> bool:
        argv = [*command, "ingest", "run", "--help"]
        try:
            # Registered, so that the worker's orphan reaper never takes its exit status.
            child = CHILDREN.start(
                lambda: subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        except OSError as exc:
            log.warning("handoff.probe_failed", command=" ".join(argv), error=str(exc))
            return False
        try:
            stdout, _ = child.communicate(timeout=self._timeout)
        except subprocess.TimeoutExpired as exc:
            child.kill()
            child.communicate()
            log.warning("handoff.probe_failed", command=" ".join(argv), error=str(exc))
            return False
        finally:
            CHILDREN.forget(child.pid)
        done = subprocess.CompletedProcess(argv, child.returncode, stdout, "")
        supported = done.returncode == 0 and ENVELOPE_MARKER in done.stdout
        log.debug(
            "handoff.probed",
            command=" ".join(command),
            secrets_via="stdin envelope" if supported else "environment variables",
        )
        return supported

    def deliver(
        self,
        recipe_text: str,
        recipe_path: Path,
        values: dict[str, str],
        command: tuple[str, ...] | None = None,
    ) -> Delivery:
        """How this run of ``command`` gets ``values`` (keyed by the variable names the
        recipe reads)."""
        if values and self.reads_envelope(command):
            envelope = {"__recipe_yaml__": recipe_text, "__secrets__": values}
            return Delivery("-", json.dumps(envelope).encode("utf-8"), {}, "on stdin")
        return Delivery(str(recipe_path), None, dict(values), "as environment variables")
