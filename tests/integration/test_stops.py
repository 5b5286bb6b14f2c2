"""The real datahub CLI stopped for real: a source that hangs, timed out or cancelled.

The database is a socket that accepts connections and never answers, as a
firewalled or overloaded server does, so the CLI hangs in its PostgreSQL driver.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.integration.support import RECIPES, processes_of, silent_listener

pytestmark = pytest.mark.integration


@pytest.fixture
def silent_database() -> Iterator[str]:
    """host:port of a listener that never accepts: connects succeed, nothing answers."""
    with silent_listener() as host_port:
        yield host_port


def hanging_request(running, host_port: str, **kwargs) -> str:
    env = {"PG_HOST_PORT": host_port, "PG_DATABASE": "shop", "PG_PASSWORD": "never-checked"}
    return running.submit((RECIPES / "postgres.yml").read_text(), extra_env_vars=env, **kwargs)


def test_hanging_source_times_out_and_leaves_nothing(start_worker, silent_database):
    running = start_worker()

    urn = hanging_request(running, silent_database, timeout_seconds=8)
    result = running.wait(urn)

    report = str(result["report"])
    assert result["status"] == "TIMEOUT", report
    assert (
        "Timed out: datahub stopped (limit 8 s, set by args.timeout_seconds of the request): "
        "killed by signal SIGTERM (15)" in report
    )
    assert processes_of(urn.rsplit(":", 1)[1]) == []
    assert running.queue_is_empty()
    assert running.sandbox.gms.rejected == []


def test_kill_signal_cancels_a_hanging_source(start_worker, silent_database):
    running = start_worker(signal_poll_seconds=0.5)
    urn = hanging_request(running, silent_database)
    request_id = urn.rsplit(":", 1)[1]
    deadline = time.monotonic() + 60
    while not processes_of(request_id) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_of(request_id), "datahub never started"

    running.sandbox.gms.put_aspect(
        urn,
        "dataHubExecutionRequestSignal",
        {
            "signal": "KILL",
            "executorId": "remote",
            "createdAt": {"time": 1763719200000, "actor": "urn:li:corpuser:datahub"},
        },
    )
    result = running.wait(urn)

    report = str(result["report"])
    assert result["status"] == "CANCELLED", report
    assert (
        "Cancelled: datahub stopped (KILL signal from urn:li:corpuser:datahub at "
        "2025-11-21 10:00:00 UTC): killed by signal SIGTERM (15)" in report
    )
    assert processes_of(request_id) == []
    assert running.queue_is_empty()
