"""Which ``datahub`` runs a request: the one installed beside the executor, one from the
image's bundled environments, or one from the cache, built first if need be.

The cache key is a hash of the Python version, the CLI version, the sorted extras,
the extra requirements and the digest of the constraints the release ships, so a key
names exactly one environment. Every environment has the ``datahub-rest`` extra (the
sink the executor adds), so one built by ``EXECUTOR_PREWARM`` serves the tasks that
ask for the same source.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.version import Version

from remote_executor.errors import VenvError
from remote_executor.venvs import packages
from remote_executor.venvs.asks import Kind, VersionAsk, choose_extras
from remote_executor.venvs.build import BuildSpec, build_environment
from remote_executor.venvs.cache import RECORD, VenvCache, read_record
from remote_executor.venvs.facts import FactsStore
from remote_executor.venvs.installer import Installer, Stopper

ALWAYS = ("datahub-rest",)
HOW_TO_ALLOW = (
    "set EXECUTOR_ALLOW_INSTALL=true to let this worker install it, or build it ahead "
    "(EXECUTOR_PREWARM on this worker, or BUNDLED_VENVS when building the image)"
)


@dataclass(frozen=True)
class VenvConfig:
    """The settings of the environments."""

    root: Path
    max_bytes: int = 10 * 1024**3
    allow_install: bool = True
    latest_ttl_seconds: float = 3600.0
    bundled_dir: Path = Path("/opt/datahub/venvs")


@dataclass(frozen=True)
class EnvironmentAsk:
    """What one run needs: the CLI version, the plugins, the extra requirements."""

    version: VersionAsk
    plugins: list[str]
    requirements: list[str] = field(default_factory=list)
    sink: str | None = None


@dataclass(frozen=True)
class Chosen:
    """The CLI one run uses, and the line the report says about it."""

    command: tuple[str, ...]
    version: str | None
    note: str
    bin_dir: Path | None = None


def ago(seconds: float) -> str:
    """'3 days ago', '5 minutes ago'."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count > 1 else ''} ago"
    return "just now"


class Environments:
    """Provides the CLI each request asks for."""

    def __init__(
        self,
        config: VenvConfig,
        installer: Installer,
        native_command: tuple[str, ...],
        native: packages.PackageFacts | None,
    ) -> None:
        self.config = config
        self.installer = installer
        self.cache = VenvCache(config.root)
        self.facts = FactsStore(config.root / ".facts", installer)
        self._native_command = native_command
        self._native = native
        # What the installed CLI lacks, per set of extras: asked of its metadata once, as
        # the executor's own environment does not change under a running worker.
        self._native_lacks: dict[tuple[str, ...], bool] = {}
        self.python = platform.python_version()

    @contextlib.contextmanager
    def provide(
        self, ask: EnvironmentAsk, say: Callable[[str], None], stopper: Stopper
    ) -> Iterator[Chosen]:
        """The CLI for ``ask``, held (never evicted) until the block ends."""
        if ask.version.kind is Kind.BUNDLED:
            yield self._bundled(ask)
            return
        version = self._version(ask.version, stopper)
        if version is None:
            yield self._native_unknown(ask)
            return
        spec, facts, others = self._spec(version, ask.plugins, ask.requirements, say, stopper)
        native = self._native_will_do(spec)
        if native is not None:
            yield native
            return
        for plugin in others:
            if plugin != ask.sink:
                say(
                    f"acryl-datahub {version} has no extra named {plugin!r}; none installed "
                    "for it (a source built into the package needs none)."
                )
        with self._held(spec, facts, say, stopper) as chosen:
            yield chosen

    def _spec(
        self,
        version: str,
        plugins: list[str],
        requirements: list[str],
        say: Callable[[str], None],
        stopper: Stopper,
    ) -> tuple[BuildSpec, packages.PackageFacts, list[str]]:
        facts = self._facts(version, say, stopper)
        extras, others = choose_extras([*ALWAYS, *plugins], facts.extras)
        spec = BuildSpec(
            self.python,
            facts.version,
            tuple(extras),
            tuple(requirements),
            facts.constraints_digest,
        )
        return spec, facts, others

    def prewarm(self, plugin: str, ask: VersionAsk, say: Callable[[str], None]) -> str:
        """Build (or find) the environment a task of ``plugin`` at ``ask`` would use; its
        description."""
        with self.provide(EnvironmentAsk(ask, [plugin]), say, Stopper()) as chosen:
            return chosen.note

    def build_bundled(self, plugin: str, ask: VersionAsk, say: Callable[[str], None]) -> Path:
        """Build ``<bundled dir>/<plugin>-bundled`` for an image (replacing one there)."""
        stopper = Stopper()
        version = self._version(ask, stopper) or ""
        spec, facts, _ = self._spec(version, [plugin], [], say, stopper)
        target = self.config.bundled_dir / f"{plugin}-bundled"
        into = self.config.bundled_dir / f".{plugin}-bundled.building"
        shutil.rmtree(into, ignore_errors=True)
        record = build_environment(
            self.installer, self.facts, spec, facts, into, say=say, stopper=stopper
        )
        (into / RECORD).write_text(json.dumps(record, indent=1), encoding="utf-8")
        shutil.rmtree(target, ignore_errors=True)
        os.rename(into, target)
        return target

    def _version(self, ask: VersionAsk, stopper: Stopper) -> str | None:
        if ask.kind is Kind.PINNED:
            return ask.version
        if ask.kind is Kind.LATEST:
            return self.latest(stopper)
        return self._native.version if self._native else None

    def latest(self, stopper: Stopper) -> str:
        """The newest release, asked of the index at most once per EXECUTOR_LATEST_TTL_SECONDS."""
        memo = self.config.root / ".facts" / "latest.json"
        try:
            known = json.loads(memo.read_text(encoding="utf-8"))
            if time.time() - float(known["at"]) < self.config.latest_ttl_seconds:
                return str(known["version"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        version = self.installer.newest(packages.PACKAGE, self.python, stopper)
        memo.parent.mkdir(parents=True, exist_ok=True)
        temporary = memo.with_suffix(".tmp")
        temporary.write_text(json.dumps({"version": version, "at": time.time()}), "utf-8")
        temporary.replace(memo)
        return version

    def _facts(
        self, version: str, say: Callable[[str], None], stopper: Stopper
    ) -> packages.PackageFacts:
        if self._native is not None and Version(version) == Version(self._native.version):
            return self._native
        known = self.facts.known(version)
        if known is not None:
            return known
        if not self.config.allow_install:
            raise VenvError(
                f"CLI version {version} is not installed on this worker, and "
                f"EXECUTOR_ALLOW_INSTALL=false refuses installs: {HOW_TO_ALLOW}"
            )
        return self.facts.fetch(version, say, stopper)

    def _native_will_do(self, spec: BuildSpec) -> Chosen | None:
        native = self._native
        if native is None or Version(spec.version) != Version(native.version):
            return None
        if spec.requirements:
            return None
        if spec.extras not in self._native_lacks:
            self._native_lacks[spec.extras] = bool(packages.missing_natively(list(spec.extras)))
        if self._native_lacks[spec.extras]:
            return None
        return Chosen(
            self._native_command,
            native.version,
            f"CLI: acryl-datahub {native.version}, installed beside the executor.",
        )

    def _native_unknown(self, ask: EnvironmentAsk) -> Chosen:
        note = "CLI: the configured EXECUTOR_DATAHUB_COMMAND."
        if ask.requirements:
            note += (
                " extra_pip_requirements were not installed: with a configured command "
                "the executor cannot tell which CLI to install them for."
            )
        return Chosen(self._native_command, None, note)

    def _bundled(self, ask: EnvironmentAsk) -> Chosen:
        plugin = next(iter(ask.plugins), None)
        base = self.config.bundled_dir
        path = base / f"{plugin}-bundled"
        if plugin is None or not (path / "bin" / "datahub").exists():
            there = sorted(p.name for p in base.glob("*-bundled")) if base.is_dir() else []
            raise VenvError(
                f"CLI version 'bundled' asks for {path}, which this image does not "
                f"have (bundled here: {', '.join(there) or 'none'})"
            )
        record = read_record(path) or {}
        version = record.get("cli_version")
        return Chosen(
            (str(path / "bin" / "datahub"),),
            version,
            f"CLI: acryl-datahub {version or '(version unknown)'}, bundled at {path}.",
            path / "bin",
        )

    @contextlib.contextmanager
    def _held(
        self,
        spec: BuildSpec,
        facts: packages.PackageFacts,
        say: Callable[[str], None],
        stopper: Stopper,
    ) -> Iterator[Chosen]:
        def build(into: Path) -> dict[str, Any]:
            if not self.config.allow_install:
                raise VenvError(
                    f"{spec.describe()} is not installed on this worker, and "
                    f"EXECUTOR_ALLOW_INSTALL=false refuses installs: {HOW_TO_ALLOW}"
                )
            return build_environment(
                self.installer, self.facts, spec, facts, into, say=say, stopper=stopper
            )

        with self.cache.hold(spec.key, build, stopper.reason) as (record, built):
            path = self.cache.path(spec.key)
            if built:
                for gone in self.cache.prune(self.config.max_bytes, frozenset({spec.key})):
                    say(
                        f"Removed the least recently used environment {gone.key} "
                        f"({gone.record.get('spec')}) to stay within EXECUTOR_VENV_CACHE_MAX_GB."
                    )
            else:
                built_ago = ago(time.time() - float(record.get("built_at", 0)))
                say(f"Using cached environment {spec.key}: {spec.describe()}, built {built_ago}.")
            yield Chosen(
                (str(path / "bin" / "datahub"),),
                spec.version,
                f"CLI: {spec.describe()}, environment {path}.",
                path / "bin",
            )
