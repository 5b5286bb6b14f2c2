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
from remote_executor.gms import INPUT_ASPECT, GmsClient, MemoryReporter, RequestState
from remote_executor.models import Status, TaskResult
from remote_executor.sandbox.gms import GmsStandIn

TOKEN = "gms-token-for-tests"
URN = "urn:li:dataHubExecutionRequest:gms-1"
QUOTED_URN = "urn%3Ali%3AdataHubExecutionRequest%3Agms-1"
STATE_PATH = (
    f"/gms/entitiesV2/{QUOTED_URN}"
    "?aspects=List(dataHubExecutionRequestResult,dataHubExecutionRequestSignal,"
    "dataHubExecutionRequestInput)"
)
SIGNAL_ASPECT = "dataHubExecutionRequestSignal"
KILL = {
    "signal": "KILL",
    "executorId": "remote",
    "createdAt": {"time": 1700000000000, "actor": "urn:li:corpuser:datahub"},
}
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
        data = body.encode("utf-8", "surrogateescape")  # lone surrogates: bytes not text
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


# Replies no GMS sends: a proxy's page, a truncated body, another service's JSON.
NO_ASPECT = "JSON without one aspect in an 'aspect' object"
NO_ASPECTS = "JSON without an 'aspects' object"
GARBAGE_ASPECT_REPLIES = [
    pytest.param("text/plain", "upstream connect error", "a body that is not JSON", id="text"),
    pytest.param(
        "application/json", '{"aspect": {"com.linkedin', "a body that is not JSON", id="truncated"
    ),
    pytest.param("application/json", "[1, 2]", "JSON that is not an object", id="list"),
    pytest.param("application/json", '{"status": "ok"}', NO_ASPECT, id="no-aspect"),
    pytest.param("application/json", '{"aspect": "x"}', NO_ASPECT, id="aspect-str"),
    pytest.param("application/json", '{"aspect": {}}', NO_ASPECT, id="aspect-empty"),
    pytest.param(
        "application/json",
        '{"aspect": {"com.x.Result": [1]}}',
        "an aspect value that is not a JSON object",
        id="value",
    ),
]


@pytest.mark.parametrize(("content_type", "body", "what"), GARBAGE_ASPECT_REPLIES)
def test_a_200_that_is_not_an_aspect_is_unavailable(
    scripted: str, content_type: str, body: str, what: str
) -> None:
    Scripted.answers = [(200, content_type, body)]

    with pytest.raises(GmsUnavailableError) as caught:
        GmsClient(scripted, TOKEN, retry_seconds=30).read_result(URN)

    path = f"/aspects/{QUOTED_URN}?aspect=dataHubExecutionRequestResult&version=0"
    assert str(caught.value) == (
        f"GMS answered 200 ({content_type}) for GET {scripted}{path} with {what}: {body!r}"
    )
    assert len(Scripted.seen) == 1  # not retried: the same answer would come back


GARBAGE_STATE_REPLIES = [
    pytest.param("<html>", "a body that is not JSON", id="not-json"),
    pytest.param('"aspects"', "JSON that is not an object", id="string"),
    pytest.param('{"urn": "x"}', NO_ASPECTS, id="no-aspects"),
    pytest.param('{"aspects": []}', NO_ASPECTS, id="aspects-list"),
    pytest.param(
        '{"aspects": {"dataHubExecutionRequestResult": "RUNNING"}}',
        "dataHubExecutionRequestResult without a JSON object as its value",
        id="envelope",
    ),
    pytest.param(
        '{"aspects": {"dataHubExecutionRequestSignal": {"value": "KILL"}}}',
        "dataHubExecutionRequestSignal without a JSON object as its value",
        id="value",
    ),
]


@pytest.mark.parametrize(("body", "what"), GARBAGE_STATE_REPLIES)
def test_read_state_of_a_reply_that_is_not_an_entity(scripted: str, body: str, what: str) -> None:
    Scripted.answers = [(200, "application/json", body)]

    with pytest.raises(GmsUnavailableError) as caught:
        GmsClient(scripted, TOKEN, retry_seconds=30).read_state(URN)

    assert str(caught.value) == (
        f"GMS answered 200 (application/json) for GET {scripted.removesuffix('/gms')}"
        f"{STATE_PATH} with {what}: {body!r}"
    )
    assert len(Scripted.seen) == 1


def test_the_message_quotes_100_characters_and_never_the_token(scripted: str) -> None:
    Scripted.answers = [(200, "", "x" * 5000)]

    with pytest.raises(GmsUnavailableError) as caught:
        GmsClient(scripted, TOKEN, retry_seconds=1).read_input(URN)

    message = str(caught.value)
    assert message.endswith(
        f"(no Content-Type) for GET {scripted}/aspects/{QUOTED_URN}"
        f"?aspect=dataHubExecutionRequestInput&version=0"
        f" with a body that is not JSON: {'x' * 100!r}"
    )
    assert TOKEN not in message


def test_bytes_that_are_not_text_are_unavailable_too(scripted: str) -> None:
    Scripted.answers = [(200, "application/json", "\udcff\udcfe{")]

    with pytest.raises(GmsUnavailableError, match=r"with a body that is not JSON: "):
        GmsClient(scripted, TOKEN, retry_seconds=1).read_signal(URN)


def test_read_state_is_one_get_of_entities_v2(scripted: str) -> None:
    entity = {
        "entityName": "dataHubExecutionRequest",
        "urn": URN,
        "aspects": {
            "dataHubExecutionRequestKey": {"name": "dataHubExecutionRequestKey", "value": {}},
            SIGNAL_ASPECT: {"name": SIGNAL_ASPECT, "type": "VERSIONED", "value": KILL},
        },
    }
    Scripted.answers = [(200, "application/json", json.dumps(entity))]

    state = GmsClient(scripted, TOKEN, retry_seconds=1).read_state(URN)

    assert state == RequestState(result=None, signal=KILL)
    [(method, path, headers)] = Scripted.seen
    assert (method, path) == ("GET", STATE_PATH)
    assert headers["X-RestLi-Protocol-Version"] == "2.0.0"  # List(...) is Rest.li 2.0 syntax
    assert headers["Authorization"] == f"Bearer {TOKEN}"


def test_read_state_404_means_no_entities_v2_endpoint(scripted: str) -> None:
    Scripted.answers = [(404, "application/json", '{"status": 404}')]

    with pytest.raises(GmsRejectedError) as caught:
        GmsClient(scripted, TOKEN, retry_seconds=30).read_state(URN)

    assert caught.value.status_code == 404
    assert "this GMS has no /entitiesV2 endpoint" in str(caught.value)
    assert len(Scripted.seen) == 1


@pytest.mark.parametrize(
    ("with_result", "with_signal", "with_input"),
    [(False, False, False), (True, False, True), (False, True, False), (True, True, True)],
    ids=["none", "result-input", "signal", "all"],
)
def test_read_state_against_the_stand_in(
    gms: GmsStandIn, with_result: bool, with_signal: bool, with_input: bool
) -> None:
    urn = f"urn:li:dataHubExecutionRequest:state-{with_result:d}{with_signal:d}{with_input:d}"
    client = GmsClient(gms.url, TOKEN, retry_seconds=1)
    request_input = {
        "task": "RUN_INGEST",
        "args": {"recipe": "{}"},
        "executorId": "remote",
        "source": {"type": "MANUAL_INGESTION_SOURCE"},
        "requestedAt": 1700000000000,
    }
    if with_input:
        gms.put_aspect(urn, INPUT_ASPECT, request_input)
    if with_result:
        client.report(urn, RUNNING)
    if with_signal:
        gms.put_aspect(urn, SIGNAL_ASPECT, KILL)
    calls_before = len(gms.served)

    state = client.read_state(urn)

    assert state.result == (RUNNING.to_aspect() if with_result else None)
    assert state.signal == (KILL if with_signal else None)
    assert state.input == (request_input if with_input else None)
    assert state == RequestState(
        client.read_result(urn), client.read_signal(urn), client.read_input(urn)
    )
    assert len(gms.served) == calls_before + 4  # one for read_state, three to compare
    assert gms.rejected == []


def test_read_state_of_a_request_gms_never_heard_of(gms: GmsStandIn) -> None:
    client = GmsClient(gms.url, TOKEN, retry_seconds=1)
    calls_before = len(gms.served)

    state = client.read_state("urn:li:dataHubExecutionRequest:never-written")

    assert state == RequestState(result=None, signal=None)
    [call] = gms.served[calls_before:]
    assert (call.method, call.path) == (
        "GET",
        "/gms/entitiesV2/urn%3Ali%3AdataHubExecutionRequest%3Anever-written",
    )


def test_read_state_needs_the_token(gms: GmsStandIn) -> None:
    with pytest.raises(GmsAuthError) as caught:
        GmsClient(gms.url, None, retry_seconds=1).read_state(URN)

    assert caught.value.status_code == 401


def test_memory_reporter_read_state_goes_through_the_single_reads() -> None:
    reporter = MemoryReporter()
    assert reporter.read_state(URN) == RequestState(None, None)

    reporter.report(URN, RUNNING)
    reporter.signals[URN] = KILL

    assert reporter.read_state(URN) == RequestState(json.loads(RUNNING.to_json()), KILL)

    class Unreadable(MemoryReporter):
        def read_signal(self, urn: str) -> dict[str, Any] | None:
            raise GmsUnavailableError("down")

    with pytest.raises(GmsUnavailableError):
        Unreadable().read_state(URN)
