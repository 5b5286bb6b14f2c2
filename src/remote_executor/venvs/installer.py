"""The installer: ``uv``, run as a child of the executor, with the index settings the
user already has, and stoppable at any moment.

uv reads ``UV_INDEX_URL``, ``UV_EXTRA_INDEX_URL``, ``UV_FIND_LINKS`` and
``SSL_CERT_FILE`` itself; pip's names (``PIP_INDEX_URL``, ``PIP_EXTRA_INDEX_URL``,
``PIP_FIND_LINKS``, ``PIP_CERT``) and ``REQUESTS_CA_BUNDLE`` are passed on as uv's when
uv's own are not set. ``EXECUTOR_WHEELHOUSE`` names a directory of wheels to install
from with no index at all (``--offline --no-index --find-links``).

The child gets the environment an ingestion child inherits (no token, no static AWS
key): a requirement built from source runs its build code, and that code is the
request's, not the operator's.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import uv

from remote_executor.errors import VenvError
from remote_executor.processes import CHILDREN, child_setup

# pip's names, and the CA bundle of requests, as uv's.
_ALIASES = {
    "UV_INDEX_URL": ("PIP_INDEX_URL",),
    "UV_EXTRA_INDEX_URL": ("PIP_EXTRA_INDEX_URL",),
    "UV_FIND_LINKS": ("PIP_FIND_LINKS",),
    "SSL_CERT_FILE": ("PIP_CERT", "REQUESTS_CA_BUNDLE"),
}
_PASSED = (
    *("UV_INDEX_URL", "UV_EXTRA_INDEX_URL", "UV_FIND_LINKS", "UV_DEFAULT_INDEX", "UV_INDEX"),
    *("UV_NATIVE_TLS", "UV_INSECURE_HOST", "UV_HTTP_TIMEOUT", "UV_KEYRING_PROVIDER"),
)
ERROR_TAIL_LINES = 15
_PINNED = re.compile(r"^acryl-datahub==(\S+)", re.MULTILINE)


class Cancelled(Exception):
    """The task was stopped while its environment was being prepared."""


class Stopper:
    """Lets a task stop its installs: ``stop`` kills the running one, and any later one
    does not start."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reason: str | None = None
        self._child: subprocess.Popen[str] | None = None

    def stop(self, reason: str) -> None:
        """Kill the install that runs (its whole process group) and refuse the next."""
        with self._lock:
            if self._reason is None:
                self._reason = reason
            child = self._child
        if child is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)

    def reason(self) -> str | None:
        """Why it was stopped, if it was."""
        with self._lock:
            return self._reason

    def attach(self, child: subprocess.Popen[str] | None) -> None:
        """The install now running (None when it ended); killed at once if stopped."""
        with self._lock:
            self._child = child
            reason = self._reason
        if child is not None and reason is not None:
            self.stop(reason)


@dataclass(frozen=True)
class Installer:
    """Runs uv for one executor."""

    environ: Mapping[str, str]
    inherited: Mapping[str, str]
    cache_dir: Path
    wheelhouse: Path | None = None
    python: str = field(default_factory=lambda: sys.executable)

    def environment(self) -> dict[str, str]:
        """The installer child's environment."""
        env = dict(self.inherited)
        for name in _PASSED:
            if self.environ.get(name):
                env[name] = self.environ[name]
        for name, aliases in _ALIASES.items():
            if name not in env:
                given = next((self.environ[a] for a in aliases if self.environ.get(a)), None)
                if given:
                    env[name] = given
        env.update(UV_CACHE_DIR=str(self.cache_dir), UV_PYTHON_DOWNLOADS="never")
        env.update(UV_NO_PROGRESS="1", NO_COLOR="1")
        return env

    def index_arguments(self) -> list[str]:
        """Where packages come from: the wheelhouse alone, or the configured index."""
        if self.wheelhouse is None:
            return []
        return ["--offline", "--no-index", "--find-links", str(self.wheelhouse)]

    def run(
        self,
        words: list[str],
        say: Callable[[str], None],
        stopper: Stopper,
        stdin: str | None = None,
    ) -> str:
        """Run ``uv <words>``; see ``execute``."""
        try:
            return self.execute([uv.find_uv_bin(), *words], say, stopper, stdin)
        except VenvError as exc:
            raise VenvError(f"uv {' '.join(words[:2])} {exc}") from None

    def execute(
        self,
        argv: list[str],
        say: Callable[[str], None],
        stopper: Stopper,
        stdin: str | None = None,
    ) -> str:
        """Run ``argv``, each line of its output said as it comes; its output, or
        VenvError with the last lines when it fails, or Cancelled when stopped."""
        if stopper.reason() is not None:
            raise Cancelled(stopper.reason())
        try:
            child = CHILDREN.start(
                lambda: subprocess.Popen(
                    argv,
                    stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    env=self.environment(),
                    text=True,
                    errors="replace",
                    start_new_session=True,
                    preexec_fn=child_setup(None),  # noqa: PLW1509
                )
            )
        except OSError as exc:
            raise VenvError(f"could not start: {exc}") from None
        stopper.attach(child)
        lines: deque[str] = deque(maxlen=400)
        try:
            if stdin is not None and child.stdin is not None:
                child.stdin.write(stdin)
                child.stdin.close()
            assert child.stdout is not None
            for line in child.stdout:
                lines.append(line.rstrip("\n"))
                say(lines[-1])
            code = child.wait()
        finally:
            stopper.attach(None)
            CHILDREN.forget(child.pid)
        if stopper.reason() is not None:
            raise Cancelled(stopper.reason())
        if code != 0:
            tail = "\n".join(list(lines)[-ERROR_TAIL_LINES:]) or "(no output)"
            raise VenvError(f"exited with {code}:\n{tail}")
        return "\n".join(lines)

    def create(self, into: Path, say: Callable[[str], None], stopper: Stopper) -> Path:
        """A new, relocatable virtual environment at ``into``; its Python."""
        self.run(
            ["venv", "--relocatable", "--quiet", "--python", self.python, str(into)], say, stopper
        )
        return into / "bin" / "python"

    def install(
        self,
        python: Path,
        requirements: list[str],
        say: Callable[[str], None],
        stopper: Stopper,
        *,
        constraints: Path | None = None,
        no_deps: bool = False,
        target: Path | None = None,
    ) -> None:
        """``uv pip install`` of ``requirements`` into the environment of ``python`` (or
        into the plain directory ``target``)."""
        words = ["pip", "install", *self.index_arguments()]
        words += ["--target", str(target)] if target else ["--python", str(python)]
        if constraints is not None:
            words += ["--constraints", str(constraints)]
        if no_deps:
            words.append("--no-deps")
        self.run([*words, "--", *requirements], say, stopper)

    def newest(self, package: str, python_version: str, stopper: Stopper) -> str:
        """The newest release of ``package`` the index offers for this Python."""
        words = ["pip", "compile", "-", "--quiet", "--no-deps", "--no-header", "--no-annotate"]
        output = self.run(
            [*words, "--python-version", python_version, *self.index_arguments()],
            lambda _: None,
            stopper,
            stdin=f"{package}\n",
        )
        found = _PINNED.search(output)
        if found is None:
            raise VenvError(f"the index named no release of {package}: {output[-300:]}")
        return found.group(1)
