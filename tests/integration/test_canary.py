"""The canary: a random secret, leaked every way a connector can leak it, must leave no
trace in anything the executor produced. A real `executor run` process, a real
`datahub ingest` running tests/integration/canary_source.py, moto and the GMS stand-in;
afterwards every byte is searched for every encoding of the value."""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from remote_executor.messages import build_message
from remote_executor.models import TERMINAL_STATUSES
from tests.integration.support import REPO

pytestmark = pytest.mark.integration

RECIPE = """\
source:
  type: tests.integration.canary_source:CanarySource
  config:
    user: reader
    password: "${CANARY}"
"""


def encodings(value: str) -> dict[str, str]:
    """Every form of ``value`` the canary source prints; none may survive."""
    raw = value.encode()
    return {
        "plain": value,
        "JSON-escaped": json.dumps(value)[1:-1],
        "JSON-escaped, unicode kept": json.dumps(value, ensure_ascii=False)[1:-1],
        "URL-encoded": quote(value, safe=""),
        "form-encoded": quote_plus(value),
        "base64": base64.b64encode(raw).decode().rstrip("="),
        "base64, URL-safe": base64.urlsafe_b64encode(raw).decode().rstrip("="),
        "Basic auth header": base64.b64encode(f"reader:{value}".encode()).decode().rstrip("="),
        "Python repr": repr(value)[1:-1],
        "Python repr of a repr": repr(repr(value))[1:-1],
    }


def everything_produced(tmp_path: Path, gms_bodies: list[bytes]) -> dict[str, bytes]:
    """Each file under the test's directory (task work dirs, the worker's HOME, its stdout
    and stderr) and every request body GMS received."""
    places = {
        str(path.relative_to(tmp_path)): path.read_bytes()
        for path in sorted(tmp_path.rglob("*"))
        if path.is_file()
    }
    places["GMS request bodies"] = b"\n".join(gms_bodies)
    return places


@pytest.mark.parametrize("handoff", ["auto", "env"])
def test_canary_secret_leaves_no_trace(sandbox, tmp_path: Path, handoff: str):
    canary = f'cn-{secrets.token_hex(8)}"\\/+= é&%{secrets.token_hex(4)}'
    arn = sandbox.aws.put_secret(f"it/canary-{secrets.token_hex(4)}", canary)
    queue_url = sandbox.aws.create_queue(f"it-canary-{secrets.token_hex(4)}")
    (tmp_path / "home").mkdir()
    env = {
        **os.environ,
        **sandbox.env(),
        "EXECUTOR_QUEUE_URL": queue_url,
        "EXECUTOR_SECRETS": f"CANARY={arn}",
        "EXECUTOR_SECRETS_DIR": str(tmp_path / "no-secret-files"),
        "EXECUTOR_SECRET_HANDOFF": handoff,
        "EXECUTOR_WORK_DIR": str(tmp_path / "work"),
        "EXECUTOR_LOG_FORMAT": "json",
        "EXECUTOR_HEALTH_PORT": "0",
        "EXECUTOR_LOG_LEVEL": "DEBUG",
        "EXECUTOR_CHILD_ENV_PASSTHROUGH": "PYTHONPATH",
        "PYTHONPATH": str(REPO),
        "HOME": str(tmp_path / "home"),
    }
    request_id = f"it-canary-{secrets.token_hex(6)}"
    with (
        (tmp_path / "worker.stdout").open("wb") as out,
        (tmp_path / "worker.stderr").open("wb") as err,
    ):
        worker = subprocess.Popen(
            [sys.executable, "-m", "remote_executor", "run"], env=env, stdout=out, stderr=err
        )
    try:
        sandbox.aws.client("sqs").send_message(
            QueueUrl=queue_url,
            MessageBody=sandbox.gms.write_request(build_message(request_id, RECIPE, "remote")),
        )
        result = sandbox.gms.wait_for_status(
            f"urn:li:dataHubExecutionRequest:{request_id}", TERMINAL_STATUSES, timeout_seconds=180
        )
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0
    assert result is not None, (tmp_path / "worker.stdout").read_text()

    # The canary spoke: each of its lines reached the log, masked.
    log = (tmp_path / "work" / f"{request_id}.1" / "ingestion.log").read_text()
    for name in ("plain", "json", "url", "base64", "basic-auth", "repr", "stderr", "split"):
        assert f"canary {name}: " in log, name
    assert "********" in log
    assert result["status"] == "FAILURE"
    assert "connected_with" in json.dumps(result["structuredReport"])

    places = everything_produced(tmp_path, sandbox.gms.raw_bodies)
    found = {
        (form, place): data.count(text.encode())
        for form, text in encodings(canary).items()
        for place, data in places.items()
        if text.encode() in data
    }
    scanned = sum(len(data) for data in places.values())
    print(
        f"\ncanary ({handoff}): {len(encodings(canary))} encodings searched in {len(places)} "
        f"places, {scanned:,} bytes: {sum(found.values())} occurrences\n  "
        + "\n  ".join(f"{place}: {len(data):,} bytes" for place, data in places.items())
    )
    assert found == {}
