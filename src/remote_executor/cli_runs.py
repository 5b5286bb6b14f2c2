"""``executor runs`` and ``executor logs``: the requests GMS holds, as the UI lists them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from remote_executor.errors import ConfigurationError, ExecutorError
from remote_executor.gms import GmsClient
from remote_executor.models import request_urn

_COLUMNS = ("REQUESTED (UTC)", "STATUS", "TASK", "EXECUTOR", "TRIGGER", "DURATION", "URN")


def _gms(gms_url: str | None) -> GmsClient:
    from remote_executor.cli import load_settings_of
    from remote_executor.settings_common import CommonSettings

    settings = load_settings_of(CommonSettings, gms_url=gms_url)
    try:
        return GmsClient(settings.require_gms_url(), settings.token, settings.gms_retry_seconds)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from exc


@click.command()
@click.option("--source", "source_urn", metavar="URN", help="Only this ingestion source's runs.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@click.option("--gms-url", help="DataHub GMS URL ending in /gms (DATAHUB_GMS_URL).")
def runs(source_urn: str | None, limit: int, gms_url: str | None) -> None:
    """Recent execution requests and their status, newest first, from GMS.

    The same search the DataHub UI makes for a source's run history (by the input's
    source.ingestionSource, newest requestedAt first).
    """
    from remote_executor.gms_search import list_requests

    gms = _gms(gms_url)
    try:
        page = list_requests(gms, source_urn, None, 0, limit)
        states = [(urn, gms.read_state(urn)) for urn in page.urns]
        rows = [_row(urn, state.input, state.result) for urn, state in states]
    except ExecutorError as exc:
        raise click.ClickException(str(exc)) from exc
    if not rows:
        click.echo("no execution requests" + (f" for {source_urn}" if source_urn else ""))
        return
    widths = [max(len(row[i]) for row in (_COLUMNS, *rows)) for i in range(len(_COLUMNS))]
    for row in (_COLUMNS, *rows):
        click.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    if page.total > len(rows):
        click.echo(f"({len(rows)} of {page.total}; --limit shows more)")


@click.command()
@click.argument("urn")
@click.option("--gms-url", help="DataHub GMS URL ending in /gms (DATAHUB_GMS_URL).")
def logs(urn: str, gms_url: str | None) -> None:
    """Print one run's report (its status, why it ended, and the log tail) from GMS.

    URN is the request's urn or id.
    """
    full = urn if urn.startswith("urn:li:") else request_urn(urn)
    gms = _gms(gms_url)
    try:
        state = gms.read_state(full)
    except ExecutorError as exc:
        raise click.ClickException(str(exc)) from exc
    if state.result is None:
        known = "it has not started" if state.input is not None else "GMS holds no such request"
        raise click.ClickException(f"no report for {full}: {known}")
    click.echo(f"{full}: {state.result.get('status')}")
    click.echo(str(state.result.get("report", "")))


def _row(urn: str, value: dict[str, Any] | None, result: dict[str, Any] | None) -> tuple[str, ...]:
    value = value or {}
    requested = value.get("requestedAt")
    when = (
        datetime.fromtimestamp(requested / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
        if isinstance(requested, int)
        else "-"
    )
    duration = (result or {}).get("durationMs")
    return (
        when,
        str((result or {}).get("status", "PENDING")),
        str(value.get("task", "-")),
        str(value.get("executorId", "default")),
        str((value.get("source") or {}).get("type", "-")).removesuffix("_INGESTION_SOURCE"),
        f"{duration / 1000:.1f} s" if isinstance(duration, int) else "-",
        urn,
    )
