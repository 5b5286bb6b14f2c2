"""``executor submit``: write a request to GMS as the DataHub UI does, then queue it."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from pathlib import Path

import click

from remote_executor.errors import ExecutorError
from remote_executor.gms import GmsClient
from remote_executor.messages import message_for, request_input
from remote_executor.models import URN_PREFIX, TaskKind
from remote_executor.queue.sqs import SqsQueue


@click.command()
@click.argument("recipe", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--queue-url", help="SQS queue URL (EXECUTOR_QUEUE_URL).")
@click.option("--gms-url", help="GMS URL, ending in /gms (DATAHUB_GMS_URL).")
@click.option("--executor-id", default="remote", show_default=True, help="Which executor runs it.")
@click.option("--urn", help="Request urn or id (default: a new id).")
@click.option(
    "--task",
    "task_name",
    type=click.Choice([k.value for k in TaskKind]),
    default=TaskKind.RUN_INGEST.value,
    show_default=True,
)
@click.option(
    "--source-urn",
    "--ingestion-source",
    "ingestion_source",
    help="Ingestion source urn: DataHub lists the run under that source.",
)
@click.option(
    "--version",
    "cli_version",
    default="native",
    show_default=True,
    help="CLI version to run (args.version): native, latest, bundled or a release.",
)
@click.option(
    "--actor",
    metavar="URN",
    help="Who requested it (actorUrn); default: the user the token belongs to.",
)
@click.option(
    "--via-bridge",
    is_flag=True,
    help="Only write the request to GMS: a bridge (`executor bridge`) queues it.",
)
@click.option(
    "--env",
    "env_pairs",
    multiple=True,
    metavar="NAME=VALUE",
    help="Extra environment for the recipe (extra_env_vars); repeatable.",
)
def submit(  # noqa: PLR0917 (one parameter per click option)
    recipe: Path,
    queue_url: str | None,
    gms_url: str | None,
    executor_id: str,
    urn: str | None,
    task_name: str,
    ingestion_source: str | None,
    cli_version: str,
    actor: str | None,
    via_bridge: bool,
    env_pairs: tuple[str, ...],
) -> None:
    """Write RECIPE to GMS as an execution request, then queue it; print its urn.

    The request's input goes to GMS first, as the DataHub UI writes it, so that DataHub
    lists the run and the worker (which runs what GMS holds) accepts it. With
    --via-bridge it is only written: the bridge beside DataHub queues it, once.
    """
    from remote_executor.cli import _env_pairs, load_settings

    settings = load_settings(queue_url=queue_url, gms_url=gms_url)
    request_id = (urn or str(uuid.uuid4())).removeprefix(URN_PREFIX)
    urn = f"{URN_PREFIX}{request_id}"
    value = request_input(
        recipe.read_text(encoding="utf-8"),
        executor_id,
        task=TaskKind(task_name),
        ingestion_source=ingestion_source,
        extra_env_vars=_env_pairs(env_pairs),
        version=cli_version,
        actor_urn=actor or token_actor(settings.token),
    )
    try:
        queue_url = None if via_bridge else settings.require_queue_url()
        gms = GmsClient(settings.require_gms_url(), settings.token, settings.gms_retry_seconds)
        gms.write_input(urn, value)
        if queue_url is not None:
            SqsQueue.create(queue_url, settings.aws_region).send(message_for(urn, value))
    except ExecutorError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(urn)


def token_actor(token: str | None) -> str | None:
    """The corpuser a DataHub access token belongs to, from its claims (``actorId``).

    DataHub's access tokens are JWTs; what the UI records as a request's actor is that
    user. The claims are read, not verified (GMS verifies the token). None for a token that
    is not such a JWT.
    """
    parts = (token or "").split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    actor = claims.get("actorId") if isinstance(claims, dict) else None
    return f"urn:li:corpuser:{actor}" if isinstance(actor, str) and actor else None
