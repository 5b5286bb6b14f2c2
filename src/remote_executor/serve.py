"""``executor run``: the worker wired from the settings, with its health endpoints and
signals, until the drain ends."""

from __future__ import annotations

import threading
import time

import click
import structlog

from remote_executor.errors import ConfigurationError, ExecutorError, NotGmsError
from remote_executor.gms import GmsClient
from remote_executor.health import HealthServer, Readiness
from remote_executor.processes import become_subreaper, make_undumpable
from remote_executor.queue.sqs import SqsQueue
from remote_executor.settings import Settings
from remote_executor.signals import StopSignals
from remote_executor.task import TaskContext
from remote_executor.wiring import redactor_and_logs, task_context
from remote_executor.worker import Worker

# Longer than a long poll (20 s) and a slot wait, with room for a slow receive.
LOOP_STALE_SECONDS = 90.0

log = structlog.get_logger("remote_executor.serve")


def serve(settings: Settings) -> None:
    """Run the worker until a signal and its drain; ClickException for what stops it."""
    redactor = redactor_and_logs(settings)
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
    server = health_server(settings.health_port, worker, readiness)
    try:
        check_at_start(gms, queue)
        # Ask the CLI now, not in the first task, whether it reads the stdin envelope.
        threading.Thread(
            target=context.handoff.reads_envelope, name="cli-probe", daemon=True
        ).start()
        if settings.prewarm:
            # Readiness does not wait: a task that needs one of these waits on its build
            # lock and finds it built, and every other task runs meanwhile.
            threading.Thread(
                target=prewarm, args=(context, settings), name="prewarm", daemon=True
            ).start()
        StopSignals(lambda force: worker.stop(force=force)).install()
        readiness.start()
        worker.run()
    finally:
        readiness.stop()
        server.stop()


def prewarm(context: TaskContext, settings: Settings) -> None:
    """Build the environments of EXECUTOR_PREWARM, one after another; a failure is logged."""
    for plugin, ask in settings.prewarm:
        started = time.monotonic()
        try:
            note = context.environments.prewarm(plugin, ask, lambda _: None)
        except ExecutorError as exc:
            log.error("venvs.prewarm_failed", plugin=plugin, version=ask.describe(), error=str(exc))
            continue
        log.info("venvs.prewarmed", environment=note, seconds=round(time.monotonic() - started, 1))


def check_at_start(gms: GmsClient, queue: SqsQueue) -> None:
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


def health_server(port: int, worker: Worker, readiness: Readiness) -> HealthServer:
    """/healthz, /readyz and /metrics of this worker, served from now on."""

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
