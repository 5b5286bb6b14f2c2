"""``executor check``: each part the worker needs, checked once, with OK or the fix."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

from remote_executor.errors import ExecutorError, GmsAuthError
from remote_executor.gms import GmsClient
from remote_executor.handoff import Handoff
from remote_executor.queue.base import Queue
from remote_executor.secrets import SecretSources
from remote_executor.venvs import Environments


@dataclass(frozen=True)
class CheckResult:
    """One line of the check's output."""

    ok: bool
    part: str
    detail: str

    def line(self) -> str:
        """``OK    gms     detail``, aligned."""
        return f"{'OK' if self.ok else 'FAIL':<5} {self.part:<8} {self.detail}"


def check_gms(gms: GmsClient | None, has_token: bool) -> Iterator[CheckResult]:
    """Server reachable and really GMS; token accepted."""
    if gms is None:
        yield CheckResult(
            False, "gms", "no GMS URL: set DATAHUB_GMS_URL, e.g. https://<company>.acryl.io/gms"
        )
        return
    try:
        config = gms.server_config()
    except ExecutorError as exc:
        yield CheckResult(False, "gms", str(exc))
        return
    version = config.get("versions", {}).get("acryldata/datahub", {}).get("version", "unknown")
    yield CheckResult(True, "gms", f"{gms.url} answers (DataHub {version})")
    try:
        gms.check_token()
    except GmsAuthError as exc:
        yield CheckResult(False, "token", str(exc))
        return
    except ExecutorError as exc:
        yield CheckResult(False, "token", f"could not check the token: {exc}")
        return
    yield CheckResult(
        True, "token", "accepted" if has_token else "none configured, and GMS does not require one"
    )


def check_queue(queue: Queue | None) -> Iterator[CheckResult]:
    """The queue exists and we may read its attributes."""
    if queue is None:
        yield CheckResult(False, "queue", "no queue URL: set EXECUTOR_QUEUE_URL")
        return
    try:
        attributes = queue.attributes()
    except ExecutorError as exc:
        yield CheckResult(False, "queue", f"{exc} (the role needs sqs:GetQueueAttributes)")
        return
    waiting = attributes.get("ApproximateNumberOfMessages", "?")
    yield CheckResult(True, "queue", f"{queue.url} reachable, {waiting} message(s) waiting")


def check_secrets(sources: SecretSources) -> Iterator[CheckResult]:
    """Each source in order, and every name it is known to hold resolves; never values."""
    if not sources.resolvers:
        yield CheckResult(True, "secrets", "no source (EXECUTOR_SECRET_SOURCES is empty)")
    for resolver in sources.resolvers:
        names = resolver.configured_names()
        yield CheckResult(True, "secrets", f"{resolver.label}: {resolver.describe()}")
        for name in names:
            try:
                found = resolver.lookup([name])
            except ExecutorError as exc:
                yield CheckResult(False, "secrets", f"{resolver.label}: {exc}")
                continue
            if name in found:
                yield CheckResult(True, "secrets", f"{resolver.label}: {name} resolves")
            else:
                yield CheckResult(False, "secrets", resolver.missed(name))


def check_cli(command: tuple[str, ...], handoff: Handoff | None = None) -> Iterator[CheckResult]:
    """The datahub CLI starts and says its version, and how it will get the secrets."""
    try:
        done = subprocess.run(
            [*command, "version"], capture_output=True, text=True, timeout=120, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        yield CheckResult(
            False,
            "datahub",
            f"cannot run {' '.join(command)}: {exc}; install "
            "acryl-datahub or set EXECUTOR_DATAHUB_COMMAND",
        )
        return
    version = next(
        (
            line.split(":", 1)[1].strip()
            for line in done.stdout.splitlines()
            if line.startswith("DataHub CLI version")
        ),
        None,
    )
    if done.returncode != 0 or version is None:
        yield CheckResult(
            False,
            "datahub",
            f"{' '.join(command)} version failed: {(done.stderr or done.stdout).strip()[-300:]}",
        )
        return
    yield CheckResult(True, "datahub", f"CLI {version} at {command[0]}")
    if handoff is not None:
        how = "on stdin" if handoff.reads_envelope() else "as environment variables"
        yield CheckResult(True, "datahub", f"secrets are handed over {how}")


def check_venvs(environments: Environments) -> Iterator[CheckResult]:
    """Which CLI versions requests can get: the installed one, the cache, the bundled ones."""
    config = environments.config
    entries = environments.cache.entries()
    size = sum(entry.size_bytes for entry in entries) / 1024**3
    installs = "installs allowed" if config.allow_install else "EXECUTOR_ALLOW_INSTALL=false"
    yield CheckResult(
        True,
        "venvs",
        f"{len(entries)} cached environments ({size:.2f} of {config.max_bytes / 1024**3:g} GB) "
        f"in {config.root}; {installs}",
    )
    bundled = sorted(p.name for p in config.bundled_dir.glob("*-bundled"))
    if bundled:
        yield CheckResult(True, "venvs", f"bundled in {config.bundled_dir}: {', '.join(bundled)}")
