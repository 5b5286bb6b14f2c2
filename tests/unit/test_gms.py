"""GmsClient over HTTP on loopback, and the MemoryReporter twin."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from remote_executor.errors import (
    GmsAuthError,
    GmsRejectedError,
    GmsUnavailableError,
    NotGmsError,
)
from remote_executor.gms import GmsClient, MemoryReporter
from remote_executor.models import Status, TaskResult
from remote_executor.sandbox.gms import GmsStandIn

TOKEN = "gms-token-for-tests"
URN = "urn:li:dataHubExecutionRequest:gms-1"
RUNNING = TaskResult(status=Status.RUNNING, report="Running.", start_time_ms=1700000000000)
SUCCESS = TaskResult(
    status=Status.SUCCESS,
    report="Succeeded.",
    start_time_ms=1700000000000,
    duration_ms=5300,
    structured_report='{"source": {}}',
)


@pytest.fixture(scope="module")
def gms() -> Iterator[GmsStandIn]:
    with GmsStandIn(token=TOKEN) as stand_in:
        yield stand_in


class Scripted(BaseHTTPRequestHandler):
    """Answers each request with the next (status, content type, body) of ``answers``."""

    answers: ClassVar[list[tuple[int, str, str]]] = []
    seen: ClassVar[list[tuple[str, str, dict[str, str]]]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        Scripted.seen.append((self.command, self.path, dict(self.headers)))
        status, content_type, body = (
            Scripted.answers.pop(0) if len(Scripted.answers) > 1 else Scripted.answers[0]
        )
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_POST = do_GET


@pytest.fixture
def scripted() -> Iterator[str]:
    """A server on loopback that answers what the test scripts; its base URL."""
    Scripted.answers, Scripted.seen = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/gms"
    finally:
        server.shutdown()
        server.server_close()


def test_report_is_stored_as_the_result_aspect(gms: GmsStandIn) -> None:
    client = GmsClient(gms.url + "/", TOKEN, retry_seconds=1)
    urn = "urn:li:dataHubExecutionRequest:report-1"

    client.report(urn, RUNNING)
    client.report(urn, SUCCESS)

    assert [r["status"] for r in gms.results(urn)] == ["RUNNING", "SUCCESS"]
    assert gms.last_result(urn) == SUCCESS.to_aspect()
    assert gms.rejected == []


def test_read_result_none_then_the_value(gms: GmsStandIn) -> None:
    client = GmsClient(gms.url, TOKEN, retry_seconds=1)
    urn = "urn:li:dataHubExecutionRequest:read-1"
    assert client.read_result(urn) is None

    client.report(urn, SUCCESS)

    assert client.read_result(urn) == SUCCESS.to_aspect()


def test_read_input(gms: GmsStandIn) -> None:
    urn = "urn:li:dataHubExecutionRequest:input-1"
    value = {
        "task": "RUN_INGEST",
        "executorId": "remote",
        "requestedAt": 1700000000000,
        "args": {"recipe": "source: {type: file}"},
        "source": {"type": "MANUAL_INGESTION_SOURCE"},
    }
    gms.put_aspect(urn, "dataHubExecutionRequestInput", value)

    read = GmsClient(gms.url, TOKEN, retry_seconds=1).read_input(urn)

    assert read is not None
    assert read["executorId"] == "remote"
    assert read["args"]["recipe"] == "source: {type: file}"


def test_update_after_success_is_refused(gms: GmsStandIn) -> None:
    client = GmsClient(gms.url, TOKEN, retry_seconds=1)
    urn = "urn:li:dataHubExecutionRequest:immutable-1"
    client.report(urn, SUCCESS)

    with pytest.raises(GmsRejectedError) as caught:
        client.report(urn, RUNNING)

    assert caught.value.status_code == 422


def test_missing_token_is_an_auth_error(gms: GmsStandIn) -> None:
    with pytest.raises(GmsAuthError) as caught:
        GmsClient(gms.url, None, retry_seconds=1).read_result(URN)

    assert caught.value.status_code == 401
    assert str(caught.value).startswith(f"GMS refused the token (401) for GET {gms.url}/aspects/")
    assert "check DATAHUB_GMS_TOKEN" in str(caught.value)


def test_server_config_and_token(gms: GmsStandIn) -> None:
    client = GmsClient(gms.url, TOKEN, retry_seconds=1)

    assert client.server_config()["noCode"] == "true"
    client.check_token()


def test_web_app_url_is_not_gms(gms: GmsStandIn) -> None:
    with pytest.raises(NotGmsError) as caught:
        GmsClient(gms.root_url, TOKEN, retry_seconds=1).server_config()

    assert str(caught.value) == (
        f"{gms.root_url} answers HTML: the URL reaches the DataHub web app, not GMS; "
        "for DataHub Cloud use https://<company>.acryl.io/gms"
    )


def test_json_config_without_no_code_is_not_gms(scripted: str) -> None:
    Scripted.answers = [(200, "application/json", '{"status": "ok"}')]

    with pytest.raises(NotGmsError, match=r"/config is not a GMS config: the URL reaches"):
        GmsClient(scripted, None, retry_seconds=1).server_config()


def test_headers_and_payload_of_a_report(scripted: str) -> None:
    Scripted.answers = [(200, "application/json", '{"value": "x"}')]

    GmsClient(scripted, TOKEN, retry_seconds=1).report(URN, SUCCESS)

    [(method, path, headers)] = Scripted.seen
    assert (method, path) == ("POST", "/gms/aspects?action=ingestProposal")
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["X-RestLi-Protocol-Version"] == "2.0.0"
    assert headers["Content-Type"] == "application/json"


def test_transient_5xx_is_retried(scripted: str) -> None:
    Scripted.answers = [
        (503, "text/plain", "busy"),
        (429, "text/plain", "slow down"),
        (200, "application/json", '{"value": "x"}'),
    ]

    GmsClient(scripted, TOKEN, retry_seconds=30).report(URN, SUCCESS)

    assert len(Scripted.seen) == 3


def test_persistent_5xx_gives_up_as_unavailable(scripted: str) -> None:
    Scripted.answers = [(503, "text/plain", "busy")]

    with pytest.raises(GmsUnavailableError) as caught:
        GmsClient(scripted, TOKEN, retry_seconds=0.2).report(URN, SUCCESS)

    assert str(caught.value) == (
        f"GMS answered 503 for POST {scripted}/aspects?action=ingestProposal"
    )


def test_4xx_is_not_retried(scripted: str) -> None:
    Scripted.answers = [(400, "application/json", '{"message": "bad aspect"}')]

    with pytest.raises(GmsRejectedError) as caught:
        GmsClient(scripted, TOKEN, retry_seconds=30).report(URN, SUCCESS)

    assert caught.value.status_code == 400
    assert str(caught.value).endswith('{"message": "bad aspect"}')
    assert len(Scripted.seen) == 1


def test_unreachable_gms() -> None:
    with pytest.raises(
        GmsUnavailableError, match=r"^GMS at http://127.0.0.1:9/gms could not be reached"
    ):
        GmsClient("http://127.0.0.1:9/gms", None, retry_seconds=0.2).read_result(URN)


def test_memory_reporter_keeps_history_and_fails_on_demand() -> None:
    reporter = MemoryReporter()
    reporter.report(URN, RUNNING)
    reporter.report(URN, SUCCESS)

    assert reporter.statuses(URN) == ["RUNNING", "SUCCESS"]
    assert reporter.read_result(URN) == json.loads(SUCCESS.to_json())
    assert reporter.read_result("urn:li:dataHubExecutionRequest:other") is None
    reporter.fail_with = GmsUnavailableError("down")
    with pytest.raises(GmsUnavailableError):
        reporter.report(URN, RUNNING)
    assert reporter.statuses(URN) == ["RUNNING", "SUCCESS"]
