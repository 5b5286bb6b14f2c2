"""The ``executor`` command: the only place that reads Settings and wires the parts."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import structlog
from pydantic import ValidationError

from remote_executor import __version__
from remote_executor.check import check_cli, check_gms, check_queue, check_secrets
from remote_executor.config import max_task_seconds
from remote_executor.errors import ConfigurationError, ExecutorError, NotGmsError
from remote_executor.gms import GmsClient
from remote_executor.handoff import Handoff
from remote_executor.health import HealthServer, Readiness
from remote_executor.logs import configure_logging
from remote_executor.messages import build_message
from remote_executor.models import URN_PREFIX, ExecutionRequest, Status, TaskKind
from remote_executor.processes import become_subreaper, make_undumpable
from remote_executor.queue.sqs import SqsQueue
from remote_executor.secrets import Redactor, SecretResolver, SecretSources
from remote_executor.secrets.aws import AwsSecretResolver
from remote_executor.secrets.environment import EnvSecretResolver
from remote_executor.secrets.files import FileSecretResolver
from remote_executor.settings import Settings, parse_name_map
from remote_executor.signals import StopSignals
from remote_executor.task import Task, TaskContext
from remote_executor.worker import Worker

# Longer than a long poll (20 s) and a slot wait, with room for a slow receive.
LOOP_STALE_SECONDS = 90.0

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient


def load_settings(**flags: Any) -> Settings:
    """Settings from the environment, with the flags that were given taking precedence."""
    given = {name: value for name, value in flags.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        raise click.ClickException(f"invalid settings: {problems}") from exc
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from exc


def datahub_command(settings: Settings) -> tuple[str, ...]:
    """The datahub CLI: as configured, else beside this Python, else on PATH."""
    if settings.datahub_command:
        return tuple(shlex.split(settings.datahub_command))
    beside = Path(sys.executable).parent / "datahub"
    if beside.exists():
        return (str(beside),)
    return (shutil.which("datahub") or "datahub",)


def secret_sources(
    settings: Settings,
    environ: Mapping[str, str] = os.environ,
    client: SecretsManagerClient | None = None,
) -> SecretSources:
    """The secret sources in the order of EXECUTOR_SECRET_SOURCES."""
    made: dict[str, SecretResolver] = {
        "aws": AwsSecretResolver(
            settings.secrets,
            prefix=settings.secrets_prefix,
            client=client,
            region=settings.aws_region,
            cache_seconds=settings.secret_cache_seconds,
        ),
        "file": FileSecretResolver(settings.secrets_dir),
        "env": EnvSecretResolver(environ),
    }
    return SecretSources([made[name] for name in settings.secret_sources])


def task_context(settings: Settings, redactor: Redactor, gms_url: str | None) -> TaskContext:
    """What every task shares, wired from the settings."""
    command = datahub_command(settings)
    return TaskContext(
        datahub_command=command,
        work_dir=settings.work_dir,
        base_env=settings.child_environment(os.environ),
        secrets=secret_sources(settings),
        redactor=redactor,
        handoff=Handoff(command, settings.secret_handoff),
        gms_url=gms_url,
        token=settings.token,
        file_sink_when_no_gms=gms_url is None,
        report_max_chars=settings.report_max_chars,
        worker_id=settings.worker_id,
        kill_grace_seconds=settings.kill_grace_seconds,
        timeout_seconds=settings.task_timeout_seconds,
        max_timeout_seconds=max_task_seconds(settings.lease_seconds),
        memory_limit_mb=settings.task_memory_limit_mb,
        log_max_mb=settings.task_log_max_mb,
    )


def _redactor_and_logs(settings: Settings) -> Redactor:
    redactor = Redactor()
    if settings.token:
        redactor.add(settings.token)
    configure_logging(redactor, settings.log_format, settings.log_level)
    return redactor


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
    redactor = _redactor_and_logs(settings)
    try:
        gms = GmsClient(settings.require_gms_url(), settings.token, settings.gms_retry_seconds)
        queue = SqsQueue.create(
            settings.require_queue_url(), settings.aws_region, settings.dead_letter_queue_url
        )
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from exc
    # Children cannot read the worker's environment (its token, its AWS credentials) in
    # /proc, and what a task leaves behind is re-parented here, to be found and killed.
    make_undumpable()
    become_subreaper()
    context = task_context(settings, redactor, gms.url)
    worker = Worker(queue, gms, context, settings.worker_config())
    readiness = Readiness(
        {"gms": gms.server_config, "token": gms.check_token, "queue": worker.check_queue}
    )
    worker.loops.add(readiness.loop)
    # Served before the start-up checks, which may retry GMS for a minute: alive from the
    # start, not ready until the first readiness check passes.
    server = _health_server(settings.health_port, worker, readiness)
    try:
        _check_at_start(gms, queue)
        # Ask the CLI now, not in the first task, whether it reads the stdin envelope.
        threading.Thread(
            target=context.handoff.reads_envelope, name="cli-probe", daemon=True
        ).start()
        StopSignals(lambda force: worker.stop(force=force)).install()
        readiness.start()
        worker.run()
    finally:
        readiness.stop()
        server.stop()


def _check_at_start(gms: GmsClient, queue: SqsQueue) -> None:
    """Refuse a URL that is not GMS; warn about anything that may still come right."""
    try:
        gms.server_config()
    except NotGmsError as exc:
        raise click.ClickException(str(exc)) from exc
    except ExecutorError as exc:
        click.echo(f"warning: GMS check failed, starting anyway: {exc}", err=True)
    try:
        queue.find_dead_letter_queue()
    except ExecutorError as exc:
        click.echo(f"warning: no dead-letter queue found: {exc}", err=True)


def _health_server(port: int, worker: Worker, readiness: Readiness) -> HealthServer:
    def alive() -> str | None:
        dead = worker.not_alive_because
        if dead is not None:
            return dead
        idle = worker.seconds_since_tick
        if idle < LOOP_STALE_SECONDS:
            return None
        return f"the receive loop has not gone round for {idle:.0f} s"

    def ready() -> str | None:
        return worker.not_ready_because or readiness.problem

    try:
        server = HealthServer(port, alive, ready, worker.metrics).start()
    except OSError as exc:
        raise click.ClickException(
            f"cannot serve /healthz on port {port}: {exc.strerror}; set EXECUTOR_HEALTH_PORT "
            "to a free port (0 picks one)"
        ) from exc
    structlog.get_logger(__name__).info("health endpoints", port=server.port)
    return server


@main.command()
@click.argument("recipe", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--queue-url", help="SQS queue URL (EXECUTOR_QUEUE_URL).")
@click.option("--executor-id", default="remote", show_default=True, help="Which executor runs it.")
@click.option("--urn", help="Request urn or id (default: a new id).")
@click.option(
    "--task",
    "task_name",
    type=click.Choice([k.value for k in TaskKind]),
    default=TaskKind.RUN_INGEST.value,
    show_default=True,
)
@click.option("--ingestion-source", help="Ingestion source urn (sets the pipeline name).")
@click.option(
    "--env",
    "env_pairs",
    multiple=True,
    metavar="NAME=VALUE",
    help="Extra environment for the recipe (extra_env_vars); repeatable.",
)
def submit(
    recipe: Path,
    queue_url: str | None,
    executor_id: str,
    urn: str | None,
    task_name: str,
    ingestion_source: str | None,
    env_pairs: tuple[str, ...],
) -> None:
    """Send RECIPE to the queue as an execution request; print its urn."""
    settings = load_settings(queue_url=queue_url)
    request_id = (urn or str(uuid.uuid4())).removeprefix(URN_PREFIX)
    body = build_message(
        request_id,
        recipe.read_text(encoding="utf-8"),
        executor_id,
        task=TaskKind(task_name),
        ingestion_source=ingestion_source,
        extra_env_vars=_env_pairs(env_pairs),
    )
    try:
        SqsQueue.create(settings.require_queue_url(), settings.aws_region).send(body)
    except ExecutorError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{URN_PREFIX}{request_id}")


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
    redactor = _redactor_and_logs(settings)
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
    redactor = _redactor_and_logs(settings)
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
def sandbox(aws_port: int, gms_port: int, token: str | None) -> None:
    """Start a local SQS + Secrets Manager endpoint and a GMS stand-in; print the env.

    Ports 0 pick free ones. Stop with Ctrl-C.
    """
    from remote_executor.sandbox.demo import serve_sandbox

    serve_sandbox(aws_port, gms_port, token)


@main.command()
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".demo"),
    show_default=True,
    help="Where the demo keeps its files.",
)
def demo(work_dir: Path) -> None:
    """Run the whole path locally: sandbox, worker, two recipes, final statuses."""
    from remote_executor.sandbox.demo import run_demo

    sys.exit(run_demo(work_dir.resolve()))
