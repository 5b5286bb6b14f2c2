"""A task's first phase: the CLI its request asks for, installed if need be.

What the installer prints goes to the task's log and its tail as it comes, so the
DataHub UI shows the install live; the install counts against the task's timeout,
and stopping the task kills it.
"""

from __future__ import annotations

from pathlib import Path

from remote_executor.capture import LogTail
from remote_executor.models import ExecutionRequest
from remote_executor.recipe import PreparedRecipe
from remote_executor.secrets import Redactor
from remote_executor.venvs import EnvironmentAsk, parse_version, plugin_names
from remote_executor.venvs.asks import expand_requirements


def environment_ask(request: ExecutionRequest, prepared: PreparedRecipe) -> EnvironmentAsk:
    """What the request asks of its CLI; VenvError when it asks for no version."""
    return EnvironmentAsk(
        parse_version(request.cli_version),
        plugin_names(prepared.source_type, prepared.sink_type, request.extra_pip_plugins),
        expand_requirements(request.extra_pip_requirements, request.extra_env_vars),
        prepared.sink_type,
    )


class PhaseLog:
    """Lines of the install phase, redacted, into the task's log file and tail."""

    def __init__(self, path: Path, tail: LogTail, redactor: Redactor) -> None:
        self._path = path
        self._tail = tail
        self._redactor = redactor

    def say(self, line: str) -> None:
        """One line of the phase."""
        text = self._redactor.redact(line) + "\n"
        with open(self._path, "a", encoding="utf-8") as log:
            log.write(text)
        self._tail.append(text)
