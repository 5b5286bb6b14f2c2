"""A stand-in for DataHub GMS (the metadata server's /gms REST API) for tests and the demo.

It serves only what our executor and the `datahub` CLI's datahub-rest sink call, but it checks
every payload with DataHub's own schema classes (see gms_schema) and imitates the GMS rules we
depend on, so that code passing against it sends what a real GMS accepts.

It also logs every request it serves (``served``), so that a test or a benchmark can count
round trips, and can add latency to every call, as a GMS across a network would.
"""

from __future__ import annotations

import copy
import hmac
import json
import threading
import time
from collections.abc import Callable, Set
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import unquote

from remote_executor.sandbox.gms_schema import (
    RESULT_ASPECT,
    SERVER_CONFIG,
    UNAUTHORIZED,
    JsonDict,
    PayloadError,
    Proposal,
    check_aspect,
    check_urn,
    enveloped_aspect,
    error_body,
    key_aspect,
    openapi_answer,
    parse_batch_get,
    parse_json,
    parse_openapi_entities,
    parse_restli,
    parse_restli_list,
    parse_timeseries_query,
    qualified_name,
    refusal,
)
from remote_executor.sandbox.loopback import LoopbackServer, Request, Response

_HTML = (
    b"<!doctype html><html><head><title>DataHub</title></head>"
    b"<body><noscript>You need to enable JavaScript to run this app.</noscript>"
    b"<div id='root'></div></body></html>"
)
_JSON_TYPE = "application/json"
# Who GMS says created an aspect: the key aspect it derives is its own; a stored aspect's is
# the writer's, which the stand-in's tokens do not name, so DataHub's default admin.
_SYSTEM_ACTOR = "urn:li:corpuser:__datahub_system"
_WRITER = "urn:li:corpuser:datahub"

Answer = tuple[int, Any]


@dataclass(frozen=True)
class ServedRequest:
    """One request the stand-in answered; ``at`` is when it handled it (``time.time()``)."""

    method: str
    path: str
    query: dict[str, list[str]]
    at: float


class GmsStandIn:
    """An in-process GMS on 127.0.0.1 whose state tests and the demo can read and seed."""

    def __init__(
        self, token: str | None = None, port: int = 0, latency_seconds: float = 0.0
    ) -> None:
        self._token = token
        self._latency_seconds = _checked_latency(latency_seconds)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._aspects: dict[tuple[str, str], JsonDict] = {}
        self._written_ms: dict[tuple[str, str], int] = {}
        self._served: list[ServedRequest] = []
        self._results: dict[str, list[JsonDict]] = {}
        self._accepted_at: dict[str, list[tuple[str, float]]] = {}
        self._raw_bodies: list[bytes] = []
        self._rejected: list[str] = []
        self._refused: list[str] = []
        self._failing_status: int | None = None
        self._failed_requests = 0
        self._http = LoopbackServer(self._answer, port, name="gms-stand-in")

    def start(self) -> GmsStandIn:
        """Serve on the constructor's port, or on the port of the previous start.

        Stored state survives stop() and start(), as a real GMS's database would.
        """
        self._http.start()
        return self

    def stop(self) -> None:
        """Also cuts kept-alive connections, so that a stopped GMS looks down to pooled clients."""
        self._http.stop()

    def fail_with(self, status: int | None) -> None:
        """While set, every request gets this HTTP status (e.g. 503); None returns to normal.

        Imitates a GMS behind a load balancer with no healthy backend: the failure comes before
        authentication and routing, for any method and path, and nothing is recorded, not even
        raw_bodies; only served logs the request.
        """
        with self._lock:
            self._failing_status = status

    @property
    def latency_seconds(self) -> float:
        """Added to every call, half before it is handled and half after, as a network would."""
        with self._lock:
            return self._latency_seconds

    @latency_seconds.setter
    def latency_seconds(self, seconds: float) -> None:
        with self._lock:
            self._latency_seconds = _checked_latency(seconds)

    @property
    def served(self) -> list[ServedRequest]:
        """Every request answered so far, in order, outages and web app pages included."""
        with self._lock:
            return list(self._served)

    @property
    def failed_requests(self) -> int:
        """How many requests fail_with() answered."""
        with self._lock:
            return self._failed_requests

    def __enter__(self) -> GmsStandIn:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"{self.root_url}/gms"

    @property
    def root_url(self) -> str:
        if self._http.port == 0:
            raise RuntimeError("port 0 is resolved on start(); start the stand-in first")
        return f"http://127.0.0.1:{self._http.port}"

    def results(self, urn: str) -> list[JsonDict]:
        with self._lock:
            return copy.deepcopy(self._results.get(urn, []))

    def last_result(self, urn: str) -> JsonDict | None:
        with self._lock:
            history = self._results.get(urn)
            return copy.deepcopy(history[-1]) if history else None

    def accepted_times(self, urn: str) -> list[tuple[str, float]]:
        """(status, wall-clock time) of each result of urn as it was accepted, in order.

        For latencies measured across processes: ``time.time()`` is one clock for all of
        them, so a sender's timestamp and this one can be subtracted.
        """
        with self._lock:
            return list(self._accepted_at.get(urn, []))

    def aspect(self, urn: str, aspect_name: str) -> JsonDict | None:
        with self._lock:
            return copy.deepcopy(self._aspects.get((urn, aspect_name)))

    def urns(self, entity_type: str) -> list[str]:
        prefix = f"urn:li:{entity_type}:"
        with self._lock:
            return list(dict.fromkeys(urn for urn, _ in self._aspects if urn.startswith(prefix)))

    def put_aspect(self, urn: str, aspect_name: str, value: JsonDict) -> None:
        """Seeds state as if it were already in GMS's database: validated, but never refused.

        A seeded result counts as accepted, so it also shows in results() and last_result().
        """
        entity_type = urn.split(":")[2] if urn.count(":") >= 3 else ""
        proposal = Proposal(
            entity_type, check_urn(entity_type, urn), aspect_name, check_aspect(aspect_name, value)
        )
        with self._lock:
            self._store(proposal)

    @property
    def raw_bodies(self) -> list[bytes]:
        with self._lock:
            return list(self._raw_bodies)

    @property
    def rejected(self) -> list[str]:
        with self._lock:
            return list(self._rejected)

    @property
    def refused(self) -> list[str]:
        """Valid writes GMS would still deny (HTTP 422), kept apart from invalid payloads."""
        with self._lock:
            return list(self._refused)

    def wait_for_status(
        self, urn: str, statuses: Set[str], timeout_seconds: float
    ) -> JsonDict | None:
        """The latest accepted result of urn with one of statuses, even if it was since updated.

        Searching the history rather than the current value lets a caller wait for a short-lived
        status such as RUNNING without racing the executor.
        """
        with self._changed:
            found = self._changed.wait_for(
                lambda: self._matching_result(urn, statuses), timeout_seconds
            )
            return copy.deepcopy(found)

    def _matching_result(self, urn: str, statuses: Set[str]) -> JsonDict | None:
        for result in reversed(self._results.get(urn, [])):
            if result.get("status") in statuses:
                return result
        return None

    def _store(self, proposal: Proposal) -> None:
        """Caller holds the lock."""
        value = copy.deepcopy(proposal.value)
        self._aspects[(proposal.urn, proposal.aspect_name)] = value
        self._written_ms[(proposal.urn, proposal.aspect_name)] = int(time.time() * 1000)
        if proposal.aspect_name == RESULT_ASPECT:
            self._results.setdefault(proposal.urn, []).append(value)
            stamp = (str(value.get("status")), time.time())
            self._accepted_at.setdefault(proposal.urn, []).append(stamp)
        self._changed.notify_all()

    def _answer(self, request: Request) -> Response:
        """Every request, after half the latency and before the other half."""
        half = self.latency_seconds / 2
        if half:
            time.sleep(half)
        response = self._serve(request)
        if half:
            time.sleep(half)
        return response

    def _serve(self, request: Request) -> Response:
        """Every request, in GMS's order: outage, web app, authentication, then the API."""
        with self._lock:
            served = ServedRequest(request.method, request.path, dict(request.query), time.time())
            self._served.append(served)
            failing = self._failing_status
            if failing is not None:
                self._failed_requests += 1
            elif request.body:
                self._raw_bodies.append(request.body)
        under_gms = request.path == "/gms" or request.path.startswith("/gms/")
        if failing is not None:
            answer = failing, error_body(failing, f"stand-in failing with {failing}")
        elif not under_gms:  # the web app answers everything else
            return 200, _HTML, "text/html; charset=utf-8"
        elif _below_gms(request) != "/config" and not self._authorized(request):
            answer = 401, error_body(401, UNAUTHORIZED)
        else:
            answer = self._handle(request)
        return answer[0], json.dumps(answer[1]).encode(), _JSON_TYPE

    def _authorized(self, request: Request) -> bool:
        if self._token is None:
            return True
        given = request.headers.get("Authorization") or ""
        return hmac.compare_digest(given.encode(), f"Bearer {self._token}".encode())

    def _handle(self, request: Request) -> Answer:
        """Everything below /gms. A bug here must fail the tests, hence 500 plus a rejection."""
        try:
            return self._route(request)
        except Exception as exc:
            return self._reject(f"stand-in error on {request.path}: {exc!r}", 500)

    def _route(self, request: Request) -> Answer:
        route, query = _below_gms(request), request.query
        if request.method == "GET" and route == "/config":
            return 200, SERVER_CONFIG
        if request.method == "GET" and route.startswith("/aspects/"):
            return self._get_aspect(unquote(route[len("/aspects/") :]), query)
        if request.method == "GET" and route.startswith("/entitiesV2/"):
            return self._get_entity(request, unquote(route[len("/entitiesV2/") :]))
        if request.method == "POST" and route == "/aspects":
            return self._post_aspects(request)
        if request.method == "POST" and route.startswith("/openapi/v3/entity/"):
            return self._post_openapi(request, route.removeprefix("/openapi/v3/entity/"))
        return 404, error_body(404, f"not found: {request.path}")

    def _post_openapi(self, request: Request, entity_path: str) -> Answer:
        entity_type, _, action = entity_path.partition("/")
        if not action:
            return self._write(
                lambda: parse_openapi_entities(entity_type, _json(request)), openapi_answer
            )
        if action == "batchGet":
            return self._batch_get(request)
        return 404, error_body(404, f"not found: {request.path}")

    def _get_aspect(self, urn: str, query: dict[str, list[str]]) -> Answer:
        aspect_name = query.get("aspect", [""])[0]
        version = query.get("version", ["0"])[0]
        value = self.aspect(urn, aspect_name) if version == "0" else None
        if value is None:
            return 404, error_body(
                404, f"aspect {aspect_name} of {urn} (version {version}) not found"
            )
        return 200, {"urn": urn, "version": 0, "aspect": {qualified_name(aspect_name): value}}

    def _get_entity(self, request: Request, urn: str) -> Answer:
        """Rest.li GET /entitiesV2/{urn}?aspects=List(...), an EntityResponse.

        As in GMS, never a 404: an aspect GMS does not have is left out, and the key aspect is
        always there, derived from the urn when it was never written, so an entity GMS never
        heard of answers 200 with its key aspect alone. Sources, in datahub-project/datahub:
        metadata-service/restli-servlet-impl/src/main/java/com/linkedin/metadata/resources/
        entity/EntityV2Resource.java (get: no aspects means all; alwaysIncludeKeyAspect
        defaults to true), metadata-io/src/main/java/com/linkedin/metadata/entity/
        EntityServiceImpl.java (getCorrespondingAspects: every urn asked for gets an entry,
        with the key aspect from EntityUtils.getKeyEnvelopedAspect), and
        metadata-models/src/main/pegasus/com/linkedin/entity/EntityResponse.pdl and
        EnvelopedAspect.pdl (the shape).
        """
        protocol = request.headers.get("X-RestLi-Protocol-Version")
        try:
            entity_type = urn.split(":")[2] if urn.count(":") >= 3 else ""
            check_urn(entity_type, urn)
            wanted = parse_restli_list(request.query.get("aspects"), protocol)
            key_name, key_value = key_aspect(urn)
        except PayloadError as exc:
            return self._reject(str(exc))
        with self._lock:
            aspects = {
                name: enveloped_aspect(name, copy.deepcopy(value), self._created(urn, name))
                for (stored_urn, name), value in self._aspects.items()
                if stored_urn == urn and (wanted is None or name in wanted)
            }
        if key_name not in aspects:
            created = {"actor": _SYSTEM_ACTOR, "time": int(time.time() * 1000)}
            aspects[key_name] = enveloped_aspect(key_name, key_value, created)
        return 200, {"entityName": entity_type, "urn": urn, "aspects": aspects}

    def _created(self, urn: str, aspect_name: str) -> JsonDict:
        """Caller holds the lock."""
        return {"actor": _WRITER, "time": self._written_ms[(urn, aspect_name)]}

    def _post_aspects(self, request: Request) -> Answer:
        action = request.query.get("action", [""])[0]
        if action == "ingestProposal":
            return self._write(
                lambda: _restli(request, "proposal"), lambda done: {"value": done[0].urn}
            )
        if action == "ingestProposalBatch":
            return self._write(
                lambda: _restli(request, "proposals"),
                lambda done: {"value": [proposal.urn for proposal in done]},
            )
        if action == "getTimeseriesAspectValues":
            return self._timeseries_values(request)
        return 404, error_body(404, f"not found: {request.path}?action={action}")

    def _timeseries_values(self, request: Request) -> Answer:
        """Latest stored value only: enough for the CLI's stateful-ingestion checkpoint lookup."""
        try:
            urn, aspect_name, limit = parse_timeseries_query(_json(request))
        except PayloadError as exc:
            return self._reject(str(exc))
        value = self.aspect(urn, aspect_name)
        aspect = {"value": json.dumps(value), "contentType": _JSON_TYPE}
        found = [] if value is None else [{"aspect": aspect}]
        return 200, {"value": {"limit": limit, "values": found}}

    def _batch_get(self, request: Request) -> Answer:
        """The CLI's SQL parser looks up schemaMetadata of tables a view reads this way."""
        try:
            wanted = parse_batch_get(_json(request))
        except PayloadError as exc:
            return self._reject(str(exc))
        with self._lock:
            found = [self._entity(urn, aspect_names) for urn, aspect_names in wanted]
        return 200, [entity for entity in found if len(entity) > 1]

    def _entity(self, urn: str, aspect_names: set[str]) -> JsonDict:
        """Caller holds the lock. No aspect names means all of them, as in OpenAPI."""
        entity: JsonDict = {"urn": urn}
        for (stored_urn, name), value in self._aspects.items():
            if stored_urn == urn and (not aspect_names or name in aspect_names):
                entity[name] = {"value": copy.deepcopy(value)}
        return entity

    def _reject(self, reason: str, status: int = 400) -> Answer:
        with self._lock:
            self._rejected.append(reason)
        return status, error_body(status, reason)

    def _write(
        self, parse: Callable[[], list[Proposal]], answer: Callable[[list[Proposal]], Any]
    ) -> Answer:
        """Validates all proposals, then stores all or none of them."""
        try:
            proposals = parse()
        except PayloadError as exc:
            return self._reject(str(exc))
        with self._lock:
            refusal = self._refusal(proposals)
            if refusal is not None:
                self._refused.append(refusal)
                return 422, error_body(422, refusal)
            for proposal in proposals:
                self._store(proposal)
        return 200, answer(proposals)

    def _refusal(self, proposals: list[Proposal]) -> str | None:
        """Caller holds the lock."""
        for proposal in proposals:
            previous = self._aspects.get((proposal.urn, proposal.aspect_name))
            reason = refusal(previous, proposal)
            if reason is not None:
                return reason
        return None


def _checked_latency(seconds: float) -> float:
    if seconds < 0:
        raise ValueError(f"latency cannot be negative: {seconds}")
    return seconds


def _below_gms(request: Request) -> str:
    return request.path.removeprefix("/gms")


def _json(request: Request) -> object:
    return parse_json(request.headers.get("Content-Type"), request.body)


def _restli(request: Request, key: str) -> list[Proposal]:
    protocol = request.headers.get("X-RestLi-Protocol-Version")
    return parse_restli(request.headers.get("Content-Type"), protocol, request.body, key)
