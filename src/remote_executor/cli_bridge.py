"""``executor bridge``: forward DataHub's execution requests from GMS to the queues."""

from __future__ import annotations

import click

from remote_executor.errors import ConfigurationError


@click.command()
@click.option("--gms-url", help="DataHub GMS URL ending in /gms (DATAHUB_GMS_URL).")
@click.option(
    "--queue",
    "queues",
    multiple=True,
    metavar="EXECUTOR_ID=QUEUE_URL",
    help="An executor id and the queue its workers read; repeatable "
    "(EXECUTOR_BRIDGE_QUEUES=remote=<url>,team-b=<url>).",
)
@click.option(
    "--consumer-id",
    help="Whose offset in GMS this bridge keeps (EXECUTOR_BRIDGE_CONSUMER_ID, "
    "default remote-executor-bridge).",
)
@click.option("--health-port", type=int, help="Port of /healthz and /metrics (default 8080).")
def bridge(
    gms_url: str | None, queues: tuple[str, ...], consumer_id: str | None, health_port: int | None
) -> None:
    """Queue the execution requests DataHub writes for these executor ids.

    Reads GMS's change log through its Events API (GET /openapi/v1/events/poll, no Kafka
    access needed), sends each request input whose executorId is mapped to its queue
    (EXECUTOR_BRIDGE_QUEUES), keeps its offset in GMS, and sweeps: RUNNING requests
    whose heartbeat is older than EXECUTOR_STALE_RUNNING_SECONDS (default 1800) become
    ABORTED, requests no worker started within EXECUTOR_PENDING_TIMEOUT_SECONDS (default
    86400) become CANCELLED. Runs beside DataHub; stops on SIGTERM or SIGINT.
    """
    from remote_executor.bridge.serve import serve_bridge
    from remote_executor.bridge.settings import QUEUES_EXAMPLE, BridgeSettings
    from remote_executor.cli import load_settings_of
    from remote_executor.settings import parse_name_map

    try:
        mapped = parse_name_map(",".join(queues), "--queue", QUEUES_EXAMPLE) if queues else None
    except ConfigurationError as exc:
        raise click.BadParameter(str(exc), param_hint="--queue") from exc
    settings = load_settings_of(
        BridgeSettings,
        gms_url=gms_url,
        queues=mapped,
        consumer_id=consumer_id,
        health_port=health_port,
    )
    serve_bridge(settings)
