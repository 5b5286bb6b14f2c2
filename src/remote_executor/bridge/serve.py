"""``executor bridge``: the pump and the sweeper wired from the settings, with /healthz,
/readyz and /metrics, until SIGTERM or SIGINT."""

from __future__ import annotations

import threading
import time

import click
import structlog

from remote_executor.bridge.events import EventsApi
from remote_executor.bridge.forward import Forwarder, Sender
from remote_executor.bridge.metrics import BridgeMetrics
from remote_executor.bridge.offsets import GmsOffsets
from remote_executor.bridge.pump import Pump
from remote_executor.bridge.settings import BridgeSettings
from remote_executor.bridge.sweep import Sweeper
from remote_executor.errors import ConfigurationError
from remote_executor.gms import GmsClient
from remote_executor.health import HealthServer
from remote_executor.loops import Loop, Loops
from remote_executor.queue.sqs import SqsQueue
from remote_executor.signals import StopSignals
from remote_executor.wiring import redactor_and_logs

log = structlog.get_logger("remote_executor.bridge")
# A round is one long poll (20 s) plus the sends; longer than this without one is stuck.
STUCK_SECONDS = 120.0


def serve_bridge(settings: BridgeSettings) -> None:
    """Run the bridge until a signal; ClickException for what stops it from starting."""
    redactor_and_logs(settings)
    try:
        gms = GmsClient(settings.require_gms_url(), settings.token, settings.gms_retry_seconds)
        queues: dict[str, Sender] = {
            executor_id: SqsQueue.create(url, settings.aws_region, None)
            for executor_id, url in settings.require_queues().items()
        }
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from exc
    metrics = BridgeMetrics()
    forwarder = Forwarder(queues, settings.max_message_bytes)
    source = EventsApi(gms, lookback_days=settings.lookback_days)
    pump = Pump(source, GmsOffsets(gms, settings.consumer_id), forwarder, metrics)
    loops = Loops()
    loops.add(Loop("bridge-pump", pump.once, pump.next_wait))
    if settings.sweep_interval_seconds > 0:
        sweeper = Sweeper(gms, set(queues), settings.sweep_limits(), metrics)
        loops.add(
            Loop(
                "bridge-sweep",
                sweeper.once,
                settings.sweep_interval_seconds,
                on_error=lambda *_: metrics.errors.labels("sweep").inc(),
            )
        )
    server = _health(settings.health_port, pump, loops, metrics)
    stopped = threading.Event()
    StopSignals(lambda _force: stopped.set()).install()
    log.info(
        "Starting remote executor bridge",
        gms=gms.url,
        executor_ids=forwarder.executor_ids,
        consumer_id=settings.consumer_id,
    )
    for loop in loops.all():
        loop.start()
    try:
        stopped.wait()
    finally:
        log.info("bridge stopping")
        for loop in loops.all():
            loop.stop(join_seconds=1.0)
        server.stop()


def _health(port: int, pump: Pump, loops: Loops, metrics: BridgeMetrics) -> HealthServer:
    started = time.monotonic()

    def alive() -> str | None:
        dead = loops.dead
        if dead is not None:
            return dead
        last = pump.last_success or started
        idle = time.monotonic() - last
        if idle > STUCK_SECONDS and pump.problem is None:
            return f"the bridge has not finished a round for {idle:.0f} s"
        return None

    def ready() -> str | None:
        return pump.problem

    try:
        server = HealthServer(port, alive, ready, metrics).start()
    except OSError as exc:
        raise click.ClickException(
            f"cannot serve /healthz on port {port}: {exc.strerror}; set EXECUTOR_HEALTH_PORT "
            "to a free port (0 picks one)"
        ) from exc
    log.info("health endpoints", port=server.port)
    return server
