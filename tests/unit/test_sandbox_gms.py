"""The GMS stand-in, exercised over real HTTP on loopback."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import requests
from datahub.emitter.mcp import MetadataChangeProposalWrapper
from datahub.emitter.serialization_helper import pre_json_transform
from datahub.ingestion.graph.client import DatahubClientConfig, DataHubGraph
from datahub.metadata.schema_classes import (
    ExecutionRequestResultClass,
    ExecutionRequestSignalClass,
    StatusClass,
    SubTypesClass,
)
from datahub.utilities.server_config_util import RestServiceConfig

from remote_executor.errors import GmsUnavailableError
from remote_executor.gms import GmsClient
from remote_executor.sandbox import Sandbox
from remote_executor.sandbox.gms import GmsStandIn, ServedRequest
from remote_executor.sandbox.gms_schema import PayloadError

TOKEN = "s3cr3t-token"
URN = "urn:li:dataHubExecutionRequest:req-1"
DATASET = "urn:li:dataset:(urn:li:dataPlatform:sqlite,main.orders,PROD)"
RESTLI = {"Content-Type": "application/json", "X-RestLi-Protocol-Version": "2.0.0"}
RESULT = "dataHubExecutionRequestResult"
SIGNAL = "dataHubExecutionRequestSignal"
KILL = {"signal": "KILL", "createdAt": {"time": 1, "actor": "urn:li:corpuser:datahub"}}
RUNNING = '{"status": "RUNNING"}'
INPUT = "dataHubExecutionRequestInput"
ENVOY = "upstream connect error or disconnect/reset before headers"
NESTED_EXTRA = (
    '{"status": "RUNNING", "structuredReport": {"type": "CLI_INGEST", "serializedValue": "{}",'
    ' "contentType": "application/json", "extra": true}}'
)


@pytest.fixture
def gms() -> Iterator[GmsStandIn]:
    with GmsStandIn(token=TOKEN) as stand_in:
        yield stand_in


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.headers.update({**RESTLI, "Authorization": f"Bearer {TOKEN}"})
        yield session


def proposal(urn: str, aspect: Any) -> dict[str, Any]:
    """A proposal exactly as the datahub emitter puts it on the wire."""
    wire: dict[str, Any] = pre_json_transform(
        MetadataChangeProposalWrapper(entityUrn=urn, aspect=aspect).to_obj()
    )
    return wire


def raw_proposal(aspect_name: str, value: str, urn: str = URN) -> dict[str, Any]:
    entity_type = urn.split(":")[2]
    return {
        "entityType": entity_type,
        "entityUrn": urn,
        "changeType": "UPSERT",
        "aspectName": aspect_name,
        "aspect": {"contentType": "application/json", "value": value},
    }


def ingest(http: requests.Session, gms: GmsStandIn, body: Any) -> requests.Response:
    return http.post(f"{gms.url}/aspects?action=ingestProposal", data=json.dumps(body))


def result(status: str, **fields: Any) -> dict[str, Any]:
    return {"proposal": proposal(URN, ExecutionRequestResultClass(status=status, **fields))}


def test_config_satisfies_the_datahub_cli(gms: GmsStandIn) -> None:
    response = requests.get(f"{gms.url}/config", timeout=5)  # no token: /config is public
    assert response.status_code == 200
    config = response.json()
    assert config["noCode"] == "true"
    server = RestServiceConfig(raw_config=config)
    assert server.service_version == "v1.2.0"
    assert server.server_type == "dev"
    assert not server.is_datahub_cloud


def test_paths_outside_gms_answer_like_the_web_app(gms: GmsStandIn) -> None:
    for path in ("/", "/ingestion", "/gmsx", "/api/graphql"):
        response = requests.get(f"{gms.root_url}{path}", timeout=5)
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/html")
        assert "<html" in response.text


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", TOKEN, f"Basic {TOKEN}"])
def test_wrong_or_missing_token_is_401(gms: GmsStandIn, authorization: str | None) -> None:
    headers = dict(RESTLI)
    if authorization is not None:
        headers["Authorization"] = authorization
    body = json.dumps(result("RUNNING"))
    response = requests.post(
        f"{gms.url}/aspects?action=ingestProposal", data=body, headers=headers, timeout=5
    )
    assert response.status_code == 401
    assert response.json()["message"] == "Unauthorized to perform this action."
    assert gms.last_result(URN) is None
    assert requests.get(f"{gms.url}/aspects/x", headers=headers, timeout=5).status_code == 401


def test_right_token_is_accepted(gms: GmsStandIn, http: requests.Session) -> None:
    response = ingest(http, gms, result("RUNNING"))
    assert response.status_code == 200
    assert response.json() == {"value": URN}


def test_accepted_result_is_readable_with_its_qualified_name(
    gms: GmsStandIn, http: requests.Session
) -> None:
    assert ingest(http, gms, result("RUNNING", startTimeMs=1)).status_code == 200
    assert ingest(http, gms, result("FAILURE", startTimeMs=1, durationMs=7)).status_code == 200

    response = http.get(
        f"{gms.url}/aspects/{quote(URN, safe='')}?aspect=dataHubExecutionRequestResult&version=0"
    )
    assert response.status_code == 200
    stored = response.json()["aspect"]["com.linkedin.execution.ExecutionRequestResult"]
    assert stored == {"status": "FAILURE", "startTimeMs": 1, "durationMs": 7}
    assert [r["status"] for r in gms.results(URN)] == ["RUNNING", "FAILURE"]
    assert gms.last_result(URN) == stored
    assert gms.aspect(URN, "dataHubExecutionRequestResult") == stored
    assert gms.rejected == []
    assert any(b'"RUNNING' in body for body in gms.raw_bodies)
    times = gms.accepted_times(URN)
    assert [status for status, _ in times] == ["RUNNING", "FAILURE"]
    assert times[0][1] <= times[1][1] <= time.time()


def test_the_datahub_client_reads_back_what_it_wrote(gms: GmsStandIn) -> None:
    graph = DataHubGraph(DatahubClientConfig(server=gms.url, token=TOKEN))
    graph.emit_mcp(
        MetadataChangeProposalWrapper(
            entityUrn=URN, aspect=ExecutionRequestResultClass(status="RUNNING", startTimeMs=3)
        )
    )
    got = graph.get_aspect(URN, ExecutionRequestResultClass)
    assert got is not None and got.status == "RUNNING" and got.startTimeMs == 3
    assert graph.get_aspect(URN, ExecutionRequestSignalClass) is None


def bad(value: str, aspect_name: str = RESULT, **envelope: Any) -> dict[str, Any]:
    """A hand-made proposal, for payloads the datahub classes would refuse to build."""
    return {**raw_proposal(aspect_name, value), **envelope}


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        pytest.param(bad('{"status": "DONE"}'), "unknown status 'DONE'", id="status"),
        pytest.param(bad('{"status": "RUNNING", "x": 1}'), "field(s) x", id="field"),
        pytest.param(bad(NESTED_EXTRA), "structuredReport.extra", id="nested-field"),
        pytest.param(bad("not json"), "not JSON", id="not-json"),
        pytest.param(bad('{"report": "x"}'), "required field: status", id="missing"),
        pytest.param(bad('{"status": 5}'), "does not conform", id="wrong-type"),
        pytest.param(bad("{}", "noSuchAspect"), "unknown aspect", id="unknown-aspect"),
        pytest.param(bad(RUNNING, entityUrn=DATASET), "is not a urn of", id="urn"),
        pytest.param(bad(RUNNING, surprise=1), "field(s) surprise", id="envelope"),
        pytest.param(bad(RUNNING, changeType="PATCH"), "'PATCH'", id="patch"),
    ],
)
def test_invalid_payloads_are_400_and_rejected(
    gms: GmsStandIn, http: requests.Session, wire: dict[str, Any], reason: str
) -> None:
    response = ingest(http, gms, {"proposal": wire})
    assert response.status_code == 400
    assert reason in response.json()["message"]
    assert len(gms.rejected) == 1 and reason in gms.rejected[0]
    assert gms.last_result(URN) is None


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({**result("RUNNING"), "async": True}, '"async" must be the string'),
        ({**result("RUNNING"), "extra": 1}, "unrecognized parameter(s) extra"),
        ({"proposals": []}, "with 'proposal'"),
        ([], "with 'proposal'"),
    ],
)
def test_invalid_request_bodies_are_400(
    gms: GmsStandIn, http: requests.Session, body: Any, reason: str
) -> None:
    response = ingest(http, gms, body)
    assert response.status_code == 400
    assert reason in response.json()["message"]
    assert gms.rejected == [response.json()["message"]]


def test_restli_headers_are_required(gms: GmsStandIn, http: requests.Session) -> None:
    for missing in ("X-RestLi-Protocol-Version", "Content-Type"):
        headers = {name: value for name, value in http.headers.items() if name != missing}
        response = requests.post(
            f"{gms.url}/aspects?action=ingestProposal",
            data=json.dumps(result("RUNNING")),
            headers=headers,
            timeout=5,
        )
        assert response.status_code == 400, missing
    assert len(gms.rejected) == 2


def test_a_finished_result_is_immutable(gms: GmsStandIn, http: requests.Session) -> None:
    assert ingest(http, gms, result("RUNNING")).status_code == 200
    assert ingest(http, gms, result("SUCCESS")).status_code == 200

    response = ingest(http, gms, result("FAILURE"))

    assert response.status_code == 422
    assert "previous status: SUCCESS" in response.json()["message"]
    assert gms.rejected == []
    assert len(gms.refused) == 1
    assert gms.last_result(URN) == {"status": "SUCCESS"}


def test_batch_endpoint_stores_all_or_nothing(gms: GmsStandIn, http: requests.Session) -> None:
    url = f"{gms.url}/aspects?action=ingestProposalBatch"
    good = [proposal(DATASET, StatusClass(removed=False)), result("RUNNING")["proposal"]]
    invalid = [proposal(DATASET, SubTypesClass(typeNames=["Table"])), result("NOPE")["proposal"]]

    response = http.post(url, data=json.dumps({"proposals": good, "async": "true"}))
    assert response.status_code == 200
    assert response.json() == {"value": [DATASET, URN]}

    response = http.post(url, data=json.dumps({"proposals": invalid, "async": "true"}))
    assert response.status_code == 400
    assert gms.aspect(DATASET, "subTypes") is None
    assert gms.aspect(DATASET, "status") == {"removed": False}
    assert gms.urns("dataset") == [DATASET]
    assert [r["status"] for r in gms.results(URN)] == ["RUNNING"]


def test_openapi_endpoint(gms: GmsStandIn, http: requests.Session) -> None:
    url = f"{gms.url}/openapi/v3/entity/dataset?async=false&systemMetadata=false"
    body = [
        {
            "urn": DATASET,
            "status": {"value": {"removed": False}, "systemMetadata": None, "headers": {}},
            "subTypes": {"value": {"typeNames": ["Table"]}, "systemMetadata": {"runId": "r1"}},
        }
    ]
    response = http.post(url, data=json.dumps(body))
    assert response.status_code == 200
    assert response.json() == [
        {
            "urn": DATASET,
            "status": {"value": {"removed": False}},
            "subTypes": {"value": {"typeNames": ["Table"]}},
        }
    ]
    assert gms.aspect(DATASET, "subTypes") == {"typeNames": ["Table"]}

    body[0]["status"] = {"value": {"removed": "no"}}
    assert http.post(url, data=json.dumps(body)).status_code == 400
    assert http.post(url.replace("dataset", "chart"), data=json.dumps([])).status_code == 400
    assert len(gms.rejected) == 2


def test_openapi_batch_get(gms: GmsStandIn, http: requests.Session) -> None:
    gms.put_aspect(DATASET, "subTypes", {"typeNames": ["View"]})
    url = f"{gms.url}/openapi/v3/entity/dataset/batchGet"
    wanted = [{"urn": DATASET, "subTypes": {}}, {"urn": DATASET.replace("orders", "x")}]
    response = http.post(url, data=json.dumps(wanted))
    assert response.status_code == 200
    assert response.json() == [{"urn": DATASET, "subTypes": {"value": {"typeNames": ["View"]}}}]


def test_timeseries_lookup_returns_the_latest_value(
    gms: GmsStandIn, http: requests.Session
) -> None:
    url = f"{gms.url}/aspects?action=getTimeseriesAspectValues"
    query = {"urn": DATASET, "entity": "dataset", "aspect": "status", "limit": 1}
    assert http.post(url, data=json.dumps(query)).json()["value"]["values"] == []
    gms.put_aspect(DATASET, "status", {"removed": True})
    values = http.post(url, data=json.dumps(query)).json()["value"]["values"]
    assert [json.loads(value["aspect"]["value"]) for value in values] == [{"removed": True}]


def test_unknown_aspect_and_unknown_path_are_404(gms: GmsStandIn, http: requests.Session) -> None:
    missing = http.get(
        f"{gms.url}/aspects/{quote(URN, safe='')}?aspect=dataHubExecutionRequestSignal"
    )
    assert missing.status_code == 404
    assert "message" in missing.json()

    unknown = http.get(f"{gms.url}/entitiesV3/whatever")
    assert unknown.status_code == 404
    assert unknown.json()["message"] == "not found: /gms/entitiesV3/whatever"
    assert http.post(f"{gms.url}/aspects?action=delete", data="{}").status_code == 404
    assert gms.rejected == []


def test_put_aspect_seeds_validated_state(gms: GmsStandIn, http: requests.Session) -> None:
    signal = {"signal": "KILL", "createdAt": {"time": 1, "actor": "urn:li:corpuser:datahub"}}
    gms.put_aspect(URN, "dataHubExecutionRequestSignal", signal)
    response = http.get(
        f"{gms.url}/aspects/{quote(URN, safe='')}?aspect=dataHubExecutionRequestSignal&version=0"
    )
    assert response.json()["aspect"] == {"com.linkedin.execution.ExecutionRequestSignal": signal}
    with pytest.raises(PayloadError):
        gms.put_aspect(URN, "dataHubExecutionRequestSignal", {**signal, "why": "x"})
    with pytest.raises(PayloadError):
        gms.put_aspect("urn:li:nothing:1", "status", {"removed": False})


def test_wait_for_status(gms: GmsStandIn, http: requests.Session) -> None:
    def finish_later() -> None:
        time.sleep(0.2)
        ingest(http, gms, result("RUNNING"))
        ingest(http, gms, result("SUCCESS", durationMs=1))

    writer = threading.Thread(target=finish_later)
    writer.start()
    done = gms.wait_for_status(URN, {"SUCCESS", "FAILURE"}, timeout_seconds=10)
    writer.join()

    assert done == {"status": "SUCCESS", "durationMs": 1}
    assert gms.wait_for_status(URN, {"RUNNING"}, timeout_seconds=0.1) == {"status": "RUNNING"}
    assert gms.wait_for_status(URN, {"TIMEOUT"}, timeout_seconds=0.2) is None


def test_stop_cuts_kept_alive_connections(http: requests.Session) -> None:
    gms = GmsStandIn(token=TOKEN).start()
    assert http.get(f"{gms.url}/config").status_code == 200  # the session now keeps it open
    gms.stop()
    with pytest.raises(requests.ConnectionError):
        http.get(f"{gms.url}/config", timeout=5)


def test_fail_with_answers_every_request_and_stores_nothing(
    gms: GmsStandIn, http: requests.Session
) -> None:
    gms.fail_with(503)

    config = http.get(f"{gms.url}/config")
    written = ingest(http, gms, result("RUNNING"))
    anonymous = requests.get(f"{gms.url}/aspects/x", timeout=5)  # before auth, as a proxy would
    web_app = requests.get(f"{gms.root_url}/", timeout=5)

    for response in (config, written, anonymous, web_app):
        assert response.status_code == 503
        assert response.json()["message"] == "stand-in failing with 503"
    assert gms.failed_requests == 4
    assert gms.last_result(URN) is None
    assert gms.raw_bodies == []
    assert gms.rejected == []

    gms.fail_with(None)

    assert http.get(f"{gms.url}/config").status_code == 200
    assert ingest(http, gms, result("RUNNING")).status_code == 200
    assert gms.last_result(URN) == {"status": "RUNNING"}
    assert gms.failed_requests == 4


def test_stop_and_start_keep_the_port_and_the_state(http: requests.Session) -> None:
    gms = GmsStandIn(token=TOKEN).start()
    try:
        url = gms.url
        assert ingest(http, gms, result("RUNNING")).status_code == 200
        gms.stop()
        with pytest.raises(requests.ConnectionError):
            http.get(f"{url}/config", timeout=5)

        gms.start()

        assert gms.url == url
        assert http.get(f"{url}/config").status_code == 200
        assert ingest(http, gms, result("SUCCESS")).status_code == 200
        assert [r["status"] for r in gms.results(URN)] == ["RUNNING", "SUCCESS"]
    finally:
        gms.stop()


def get_entity(
    http: requests.Session, gms: GmsStandIn, urn: str, aspects: str | None
) -> requests.Response:
    url = f"{gms.url}/entitiesV2/{quote(urn, safe='')}"
    return http.get(url if aspects is None else f"{url}?aspects={aspects}")


def values(entity: dict[str, Any]) -> dict[str, Any]:
    return {name: aspect["value"] for name, aspect in entity["aspects"].items()}


def test_entities_v2_of_an_entity_never_written_is_200_with_its_key(
    gms: GmsStandIn, http: requests.Session
) -> None:
    response = get_entity(http, gms, URN, f"List({RESULT},{SIGNAL})")

    assert response.status_code == 200  # GMS makes the key aspect up: never a 404
    entity = response.json()
    assert (entity["entityName"], entity["urn"]) == ("dataHubExecutionRequest", URN)
    [key] = entity["aspects"].values()
    assert key["name"] == "dataHubExecutionRequestKey"
    assert key["value"] == {"id": "req-1"}
    assert (key["type"], key["version"]) == ("VERSIONED", 0)
    assert key["created"]["actor"] == "urn:li:corpuser:__datahub_system"
    assert gms.rejected == []


def test_entities_v2_serves_only_the_aspects_asked_for(
    gms: GmsStandIn, http: requests.Session
) -> None:
    assert ingest(http, gms, result("RUNNING")).status_code == 200
    gms.put_aspect(URN, SIGNAL, KILL)
    key = {"dataHubExecutionRequestKey": {"id": "req-1"}}

    both = get_entity(http, gms, URN, f"List({RESULT},{SIGNAL})").json()
    result_only = get_entity(http, gms, URN, f"List({RESULT})").json()
    signal_only = get_entity(http, gms, URN, f"List({SIGNAL},dataHubExecutionRequestInput)")
    none = get_entity(http, gms, URN, "List()").json()
    every = get_entity(http, gms, URN, None).json()  # no aspects parameter: all of them

    assert values(both) == {RESULT: {"status": "RUNNING"}, SIGNAL: KILL, **key}
    assert values(result_only) == {RESULT: {"status": "RUNNING"}, **key}
    assert values(signal_only.json()) == {SIGNAL: KILL, **key}
    assert values(none) == key
    assert values(every) == values(both)
    written = both["aspects"][RESULT]
    assert written["name"] == RESULT
    assert written["created"]["actor"] == "urn:li:corpuser:datahub"
    assert written["created"]["time"] <= time.time() * 1000
    assert gms.rejected == []


def test_the_datahub_client_reads_entities_v2_as_served(gms: GmsStandIn) -> None:
    """DataHub's own reader of /entitiesV2 decodes every aspect the stand-in serves."""
    gms.put_aspect(URN, SIGNAL, KILL)
    graph = DataHubGraph(DatahubClientConfig(server=gms.url, token=TOKEN))

    aspects = graph.get_entity_semityped(URN, aspects=[RESULT, SIGNAL])
    raw = graph.get_entity_raw(URN, aspects=[RESULT, SIGNAL])

    assert set(aspects) == {SIGNAL, "dataHubExecutionRequestKey"}
    signal = aspects[SIGNAL]
    assert isinstance(signal, ExecutionRequestSignalClass) and signal.signal == "KILL"
    assert raw["aspects"][SIGNAL]["value"] == KILL
    assert gms.rejected == []


@pytest.mark.parametrize(
    ("urn", "query", "reason"),
    [
        pytest.param(URN, "List(noSuchAspect)", "unknown aspect: 'noSuchAspect'", id="aspect"),
        pytest.param(URN, RESULT, "given once, as List(<name>,...)", id="syntax"),
        pytest.param("whatever", f"List({RESULT})", "unknown entity type: ''", id="urn"),
        pytest.param("urn:li:nothing:1", None, "unknown entity type: 'nothing'", id="entity"),
    ],
)
def test_entities_v2_requests_gms_would_not_understand_are_rejected(
    gms: GmsStandIn, http: requests.Session, urn: str, query: str | None, reason: str
) -> None:
    response = get_entity(http, gms, urn, query)

    assert response.status_code == 400
    assert reason in response.json()["message"]
    assert gms.rejected == [response.json()["message"]]


def test_entities_v2_list_syntax_needs_restli_2(gms: GmsStandIn, http: requests.Session) -> None:
    del http.headers["X-RestLi-Protocol-Version"]  # Rest.li 1.0 reads List(a,b) as one name

    response = get_entity(http, gms, URN, f"List({RESULT})")

    assert response.status_code == 400
    assert gms.rejected == ["X-RestLi-Protocol-Version: 2.0.0 header is required"]


def test_every_request_served_is_logged(gms: GmsStandIn, http: requests.Session) -> None:
    begun = time.time()
    http.get(f"{gms.url}/config")
    ingest(http, gms, result("RUNNING"))
    get_entity(http, gms, URN, f"List({RESULT})")
    requests.get(f"{gms.root_url}/ingestion", timeout=5)  # the web app
    gms.fail_with(503)
    http.get(f"{gms.url}/config")

    served = gms.served

    assert [(call.method, call.path) for call in served] == [
        ("GET", "/gms/config"),
        ("POST", "/gms/aspects"),
        ("GET", f"/gms/entitiesV2/{quote(URN, safe='')}"),
        ("GET", "/ingestion"),
        ("GET", "/gms/config"),
    ]
    assert served[1].query == {"action": ["ingestProposal"]}
    assert served[2].query == {"aspects": [f"List({RESULT})"]}
    times = [call.at for call in served]
    assert begun <= times[0] and times == sorted(times) and times[-1] <= time.time()
    assert isinstance(served[0], ServedRequest)


def test_added_latency_delays_every_call(http: requests.Session) -> None:
    with GmsStandIn(token=TOKEN, latency_seconds=0.05) as gms:
        for url in (f"{gms.url}/config", f"{gms.root_url}/"):
            begun = time.monotonic()
            assert http.get(url).status_code == 200
            assert time.monotonic() - begun >= 0.05
        gms.latency_seconds = 0.0
        assert gms.latency_seconds == 0.0
        with pytest.raises(ValueError, match="cannot be negative"):
            gms.latency_seconds = -1


def test_the_sandbox_passes_gms_latency_on() -> None:
    assert Sandbox(gms_latency_seconds=0.05).gms.latency_seconds == 0.05
    assert Sandbox().gms.latency_seconds == 0.0


def read_aspect(http: requests.Session, gms: GmsStandIn, aspect_name: str) -> requests.Response:
    return http.get(f"{gms.url}/aspects/{quote(URN, safe='')}?aspect={aspect_name}&version=0")


def test_garbled_reads_are_answered_as_envoy_would(gms: GmsStandIn, http: requests.Session) -> None:
    gms.put_aspect(URN, SIGNAL, KILL)
    gms.garble_reads(SIGNAL, 1)

    garbled = read_aspect(http, gms, SIGNAL)
    normal = read_aspect(http, gms, SIGNAL)

    assert garbled.status_code == 200
    assert garbled.headers["Content-Type"] == "text/plain"
    assert garbled.text == ENVOY
    assert normal.json()["aspect"] == {"com.linkedin.execution.ExecutionRequestSignal": KILL}
    assert gms.garbled_replies == 1
    assert len(gms.served) == 2
    assert gms.rejected == []


def test_a_client_reading_a_garbled_aspect_is_told_gms_is_unavailable_count_times(
    gms: GmsStandIn,
) -> None:
    gms.put_aspect(URN, SIGNAL, KILL)
    client = GmsClient(gms.url, TOKEN, retry_seconds=1)
    gms.garble_reads(SIGNAL, 3)

    for read in (client.read_signal, client.read_state, client.read_signal):
        with pytest.raises(GmsUnavailableError) as caught:
            read(URN)
        assert "GMS answered 200 (text/plain) for GET" in str(caught.value)
        assert f"with a body that is not JSON: {ENVOY!r}" in str(caught.value)

    assert client.read_signal(URN) == KILL
    assert client.read_state(URN).signal == KILL
    assert gms.garbled_replies == 3


def test_reads_of_other_aspects_are_not_garbled(gms: GmsStandIn, http: requests.Session) -> None:
    assert ingest(http, gms, result("RUNNING")).status_code == 200
    client = GmsClient(gms.url, TOKEN, retry_seconds=1)
    gms.garble_reads(SIGNAL, 2)

    assert client.read_result(URN) == {"status": "RUNNING"}
    assert client.read_input(URN) is None
    assert get_entity(http, gms, URN, f"List({RESULT})").status_code == 200
    assert gms.garbled_replies == 0

    for _ in range(2):  # the count was kept for the aspect it names
        with pytest.raises(GmsUnavailableError, match="a body that is not JSON"):
            client.read_signal(URN)
    assert client.read_signal(URN) is None
    assert gms.garbled_replies == 2


@pytest.mark.parametrize(
    ("aspects", "garbled"),
    [
        pytest.param(f"List({RESULT},{SIGNAL})", True, id="named"),
        pytest.param(None, True, id="all"),
        pytest.param(f"List({RESULT})", False, id="others"),
        pytest.param(f"List({SIGNAL},noSuchAspect)", False, id="refused"),
    ],
)
def test_entities_v2_reads_are_garbled_when_they_ask_for_the_aspect(
    gms: GmsStandIn, http: requests.Session, aspects: str | None, garbled: bool
) -> None:
    gms.garble_reads(SIGNAL, 1)

    response = get_entity(http, gms, URN, aspects)

    assert (response.text == ENVOY) is garbled
    assert gms.garbled_replies == int(garbled)


def test_fail_with_wins_over_garble_reads(gms: GmsStandIn, http: requests.Session) -> None:
    gms.garble_reads(SIGNAL, 1)
    gms.fail_with(503)

    failed = read_aspect(http, gms, SIGNAL)
    gms.fail_with(None)
    garbled = read_aspect(http, gms, SIGNAL)

    assert failed.status_code == 503
    assert garbled.text == ENVOY
    assert (gms.failed_requests, gms.garbled_replies) == (1, 1)
    assert read_aspect(http, gms, SIGNAL).status_code == 404


def test_garble_reads_counts_exactly_under_concurrent_reads(gms: GmsStandIn) -> None:
    gms.put_aspect(URN, SIGNAL, KILL)
    client = GmsClient(gms.url, TOKEN, retry_seconds=1)  # one session per thread
    outcomes: list[str] = []
    gms.garble_reads(SIGNAL, 25)

    def reader() -> None:
        for _ in range(10):
            try:
                outcomes.append(client.read_signal(URN)["signal"])  # type: ignore[index]
            except GmsUnavailableError:
                outcomes.append("garbled")

    threads = [threading.Thread(target=reader) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(set(outcomes)) == ["KILL", "garbled"]
    assert outcomes.count("garbled") == gms.garbled_replies == 25
    assert len(outcomes) == 80


def test_garble_reads_replaces_the_count_and_checks_its_arguments(
    gms: GmsStandIn, http: requests.Session
) -> None:
    gms.garble_reads(SIGNAL, 5)
    gms.garble_reads(SIGNAL, 1)
    assert read_aspect(http, gms, SIGNAL).text == ENVOY
    assert read_aspect(http, gms, SIGNAL).status_code == 404

    gms.garble_reads(SIGNAL, 3)
    gms.garble_reads(SIGNAL, 0)
    assert read_aspect(http, gms, SIGNAL).status_code == 404
    assert gms.garbled_replies == 1

    with pytest.raises(ValueError, match="unknown aspect: 'dataHubExecutionRequestSignall'"):
        gms.garble_reads("dataHubExecutionRequestSignall", 1)
    with pytest.raises(ValueError, match="count cannot be negative"):
        gms.garble_reads(SIGNAL, -1)
