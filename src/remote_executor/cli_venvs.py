"""``executor venvs``: the cached CLI environments, listed, pruned, built ahead."""

from __future__ import annotations

import time

import click

from remote_executor.errors import ConfigurationError, ExecutorError
from remote_executor.venvs.environments import Environments, ago
from remote_executor.venvs.settings import parse_prewarm


def _environments() -> Environments:
    from remote_executor.cli import load_settings
    from remote_executor.wiring import datahub_command, environments

    settings = load_settings()
    return environments(settings, datahub_command(settings))


@click.group()
def venvs() -> None:
    """The CLI environments a request's args.version needs (in EXECUTOR_VENV_DIR)."""


@venvs.command("list")
def list_() -> None:
    """Every cached environment, least recently used first, with its size and use."""
    envs = _environments()
    entries = envs.cache.entries()
    now = time.time()
    for entry in entries:
        built = ago(now - float(entry.record.get("built_at", 0)))
        click.echo(
            f"{entry.key}  {entry.record.get('spec')}  {entry.size_bytes / 1024**2:.0f} MB  "
            f"built {built}, used {ago(now - entry.last_used)}"
            f"{'  IN USE' if entry.in_use else ''}"
        )
    total = sum(entry.size_bytes for entry in entries)
    click.echo(
        f"{len(entries)} environments, {total / 1024**3:.2f} GB of "
        f"{envs.config.max_bytes / 1024**3:g} GB (EXECUTOR_VENV_CACHE_MAX_GB) in "
        f"{envs.config.root}; {len(envs.cache.builds())} builds recorded"
    )


@venvs.command()
@click.option(
    "--max-gb", type=float, help="Keep at most this much (default EXECUTOR_VENV_CACHE_MAX_GB)."
)
@click.option("--all", "everything", is_flag=True, help="Remove every environment not in use.")
def prune(max_gb: float | None, everything: bool) -> None:
    """Remove the least recently used environments; one in use is never removed."""
    envs = _environments()
    limit = 0 if everything else int((max_gb or envs.config.max_bytes / 1024**3) * 1024**3)
    removed = envs.cache.prune(limit)
    for entry in removed:
        click.echo(f"removed {entry.key}  {entry.record.get('spec')}")
    click.echo(f"{len(removed)} removed, {len(envs.cache.entries())} kept")


@venvs.command()
@click.argument("specs", nargs=-1, required=True, metavar="PLUGIN@VERSION...")
@click.option(
    "--bundled",
    is_flag=True,
    help="Build into EXECUTOR_BUNDLED_VENV_DIR/<plugin>-bundled, for args.version 'bundled' "
    "(the image's build does this).",
)
def build(specs: tuple[str, ...], bundled: bool) -> None:
    """Build the environment of each PLUGIN@VERSION (e.g. postgres@1.2.0.5 snowflake@latest,
    or comma-separated as in EXECUTOR_PREWARM) now, as EXECUTOR_PREWARM does at start-up."""
    try:
        pairs = parse_prewarm(",".join(specs))
    except ConfigurationError as exc:
        raise click.BadParameter(str(exc).replace("EXECUTOR_PREWARM entry", "entry")) from exc
    envs = _environments()
    for plugin, ask in pairs:
        try:
            if bundled:
                click.echo(f"built {envs.build_bundled(plugin, ask, click.echo)}")
            else:
                click.echo(envs.prewarm(plugin, ask, click.echo))
        except ExecutorError as exc:
            raise click.ClickException(f"{plugin}@{ask.describe()}: {exc}") from exc
