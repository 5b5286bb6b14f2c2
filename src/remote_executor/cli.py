"""The ``executor`` command: the only place that reads Settings and wires the parts."""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic import ValidationError

from remote_executor import __version__
from remote_executor.check import check_cli, check_gms, check_queue, check_secrets, check_venvs
from remote_executor.cli_bridge import bridge
from remote_executor.cli_runs import logs, runs
from remote_executor.cli_submit import submit
from remote_executor.cli_venvs import venvs
from remote_executor.errors import ConfigurationError, ExecutorError
from remote_executor.gms import GmsClient
from remote_executor.handoff import Handoff
from remote_executor.models import ExecutionRequest, Status, TaskKind
from remote_executor.queue.sqs import SqsQueue
from remote_executor.serve import serve
from remote_executor.settings import Settings, parse_name_map
from remote_executor.settings_common import CommonSettings
from remote_executor.task import Task
from remote_executor.wiring import (
    datahub_command,
    environments,
    redactor_and_logs,
    secret_sources,
    task_context,
)

S = TypeVar("S", bound=CommonSettings)


def load_settings(**flags: Any) -> Settings:
    """The worker's Settings from the environment, the flags given taking precedence."""
    return load_settings_of(Settings, **flags)


def load_settings_of(kind: type[S], **flags: Any) -> S:
    """Settings of that kind from the environment, the flags given taking precedence."""
    given = {name: value for name, value in flags.items() if value is not None}
    try:
        return kind(**given)
    except ValidationError as exc:
        problems = "; ".join(_problem(err["loc"], err["msg"]) for err in exc.errors())
        raise click.ClickException(f"invalid settings: {problems}") from exc
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from exc


def _problem(location: tuple[int | str, ...], message: str) -> str:
    # A check across settings has no single location: its message names the settings.
    where = ".".join(str(part) for part in location)
    message = message.removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def _env_pairs(pairs: tuple[str, ...]) -> dict[str, str]:
    try:
        return parse_name_map(",".join(pairs), "--env")
    except ConfigurationError as exc:
        raise click.BadParameter(str(exc), param_hint="--env") from exc


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="remote-executor")
def main() -> None:
    """Pull-based remote executor for DataHub ingestion.

    Reads execution requests from an SQS queue, resolves ${SECRET} references from
    AWS Secrets Manager, files or its environment, runs `datahub ingest` in a
    subprocess and reports to GMS.
    Configuration comes from flags and environment variables (see `executor run -h`).
    """


@main.command()
@click.option("--worker-id", help="Executor id to serve (EXECUTOR_WORKER_ID, default 'remote').")
@click.option("--queue-url", help="SQS queue URL (EXECUTOR_QUEUE_URL).")
@click.option("--gms-url", help="DataHub GMS URL ending in /gms (DATAHUB_GMS_URL).")
@click.option("--max-concurrent-tasks", type=int, help="Tasks at once (default 4).")
def run(
    worker_id: str | None,
    queue_url: str | None,
    gms_url: str | None,
    max_concurrent_tasks: int | None,
) -> None:
    """Run the worker until SIGTERM or Ctrl-C.

    \b
    Environment: DATAHUB_GMS_URL, DATAHUB_GMS_TOKEN, EXECUTOR_QUEUE_URL,
    EXECUTOR_WORKER_ID, EXECUTOR_MAX_CONCURRENT_TASKS, EXECUTOR_SECRETS
    (NAME=ARN,...), EXECUTOR_SECRETS_PREFIX, EXECUTOR_SECRETS_DIR,
    EXECUTOR_SECRET_SOURCES (default aws,file,env), EXECUTOR_LEASE_SECONDS,
    EXECUTOR_TASK_TIMEOUT_SECONDS, EXECUTOR_TASK_MEMORY_LIMIT_MB, EXECUTOR_MAX_ATTEMPTS,
    EXECUTOR_DEAD_LETTER_QUEUE_URL, EXECUTOR_SHUTDOWN_GRACE_SECONDS, and
    boto3's AWS_REGION, AWS_ENDPOINT_URL and credential chain (all of them:
    docs/configuration.md).
    /healthz, /readyz and /metrics are served on EXECUTOR_HEALTH_PORT (default 8080).
    A first SIGTERM or Ctrl-C stops receiving, releases unstarted messages
    and lets running tasks finish within EXECUTOR_SHUTDOWN_GRACE_SECONDS
    (default 100); then, or at a second signal, it stops them and releases
    their messages for a retry elsewhere. Exits 0 after the drain.
    """
    settings = load_settings(
        worker_id=worker_id,
        queue_url=queue_url,
        gms_url=gms_url,
        max_concurrent_tasks=max_concurrent_tasks,
    )
    serve(settings)


@main.command("exec")
@click.argument("recipe", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--test-connection", is_flag=True, help="Only test the source connection.")
@click.option(
    "--env",
    "env_pairs",
    multiple=True,
    metavar="NAME=VALUE",
    help="Extra environment for the recipe; repeatable.",
)
def exec_(recipe: Path, test_connection: bool, env_pairs: tuple[str, ...]) -> None:
    """Run RECIPE once, locally, through the worker's secrets and runner path.

    No queue and no GMS: a recipe without a sink writes its metadata to a file.
    Secrets come from the same sources as for the worker. Exits 0 on SUCCESS.
    """
    settings = load_settings()
    redactor = redactor_and_logs(settings)
    request = ExecutionRequest(
        request_id=f"exec-{uuid.uuid4().hex[:12]}",
        task=TaskKind.TEST_CONNECTION if test_connection else TaskKind.RUN_INGEST,
        executor_id=settings.worker_id,
        recipe=recipe.read_text(encoding="utf-8"),
        extra_env_vars=_env_pairs(env_pairs),
    )
    task = Task(request, task_context(settings, redactor, gms_url=None))
    result = task.run()
    click.echo(result.report.split("\n~~~~ Execution log")[0])
    click.echo(f"\n{result.status.value}")
    click.echo(f"  full log:          {task.log_path}")
    if task.report_path.exists():
        click.echo(f"  structured report: {task.report_path}")
    if task.metadata_path.exists():
        click.echo(f"  metadata written:  {task.metadata_path}")
    sys.exit(0 if result.status is Status.SUCCESS else 1)


@main.command()
def check() -> None:
    """Check GMS, the token, the queue, every configured secret and the datahub CLI."""
    settings = load_settings()
    redactor = redactor_and_logs(settings)
    command = datahub_command(settings)
    gms = GmsClient(settings.gms_url, settings.token, retry_seconds=5) if settings.gms_url else None
    try:
        queue = (
            SqsQueue.create(settings.queue_url, settings.aws_region) if settings.queue_url else None
        )
    except ExecutorError as exc:
        raise click.ClickException(str(exc)) from exc
    results = [
        *check_gms(gms, bool(settings.token)),
        *check_queue(queue),
        *check_secrets(secret_sources(settings)),
        *check_cli(command, Handoff(command, settings.secret_handoff)),
        *check_venvs(environments(settings, command)),
    ]
    for result in results:
        click.echo(redactor.redact(result.line()))
    sys.exit(0 if all(r.ok for r in results) else 1)


@main.command()
def health() -> None:
    """Exit 0 if the worker on this machine is alive (its /healthz), 1 if not.

    For Docker's HEALTHCHECK; the port is EXECUTOR_HEALTH_PORT (default 8080).
    """
    settings = load_settings()
    url = f"http://127.0.0.1:{settings.health_port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            click.echo(response.read().decode().strip())
    except urllib.error.HTTPError as exc:
        click.echo(f"not healthy: {exc.read().decode().strip()}", err=True)
        sys.exit(1)
    except OSError as exc:
        click.echo(f"no worker answers at {url}: {exc}", err=True)
        sys.exit(1)


@main.command()
@click.option("--aws-port", default=4566, show_default=True, help="SQS/Secrets Manager port.")
@click.option("--gms-port", default=8080, show_default=True, help="GMS stand-in port.")
@click.option("--token", help="Require this GMS token (default: no auth).")
@click.option(
    "--gms-latency-ms",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Added to every GMS call, as a GMS across a network would add it.",
)
def sandbox(aws_port: int, gms_port: int, token: str | None, gms_latency_ms: float) -> None:
    """Start a local SQS + Secrets Manager endpoint and a GMS stand-in; print the env.

    Ports 0 pick free ones. Stop with Ctrl-C.
    """
    from remote_executor.sandbox.demo import serve_sandbox

    serve_sandbox(aws_port, gms_port, token, gms_latency_ms / 1000)


@main.command()
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".demo"),
    show_default=True,
    help="Where the demo keeps its files.",
)
def demo(work_dir: Path) -> None:
    """Run the whole path locally: sandbox, worker, bridge, two recipes and a UI Execute."""
    from remote_executor.sandbox.demo import run_demo

    sys.exit(run_demo(work_dir.resolve()))


main.add_command(venvs)
main.add_command(submit)
main.add_command(bridge)
main.add_command(runs)
main.add_command(logs)
