"""A stand-in for DataHub GMS (the metadata server's /gms REST API) for tests and the demo.

It serves only what our executor and the `datahub` CLI's datahub-rest sink call, but it checks
every payload with DataHub's own schema classes and imitates the GMS rules we depend on, so
that code passing against it sends what a real GMS accepts. This module is its front door:
lifecycle, faults, the log of requests, and authentication. Behind it, gms_routes maps the API
to gms_reads and gms_writes, which answer from the database in gms_store, in the wire format
of gms_schema.

It also logs every request it serves (``served``), so that a test or a benchmark can count
round trips, and can add latency to every call, as a GMS across a network would.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import threading
import time
from collections.abc import Set
from dataclasses import dataclass
from types import TracebackType

from remote_executor.errors import MessageError
from remote_executor.messages import INPUT_ASPECT, parse_envelope
from remote_executor.sandbox.gms_events import LoggedChange
from remote_executor.sandbox.gms_routes import below_gms, reads_aspect, route
from remote_executor.sandbox.gms_schema import (
    UNAUTHORIZED,
    Answer,
    JsonDict,
    PayloadError,
    Proposal,
    check_aspect,
    check_aspect_name,
    check_urn,
    entity_type_of,
    error_body,
)
from remote_executor.sandbox.gms_store import AspectStore
from remote_executor.sandbox.loopback import LoopbackServer, Request, Response

_HTML = (
    b"<!doctype html><html><head><title>DataHub</title></head>"
    b"<body><noscript>You need to enable JavaScript to run this app.</noscript>"
    b"<div id='root'></div></body></html>"
)
_JSON_TYPE = "application/json"
# What an Envoy proxy in front of GMS answers when it loses its upstream mid-request.
_GARBLED: Response = (
    200,
    b"upstream connect error or disconnect/reset before headers",
    "text/plain",
)


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
        self._store = AspectStore()
        self._lock = threading.Lock()  # guards the fields below; the store has its own
        self._latency_seconds = _checked_latency(latency_seconds)
        self._served: list[ServedRequest] = []
        self._raw_bodies: list[bytes] = []
        self._rejected: list[str] = []
        self._failing_status: int | None = None
        self._failed_requests = 0
        self._garbles_left: dict[str, int] = {}
        self._garbled_replies = 0
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

    def fail_with(self, status: int | None) -> None:
        """While set, every request gets this HTTP status (e.g. 503); None returns to normal.

        Imitates a GMS behind a load balancer with no healthy backend: the failure comes before
        authentication and routing, for any method and path, and nothing is recorded, not even
        raw_bodies; only served logs the request. It wins over garble_reads().
        """
        with self._lock:
            self._failing_status = status

    def garble_reads(self, aspect_name: str, count: int) -> None:
        """The next count reads asking for aspect_name get 200 with a plain-text, non-JSON body.

        Imitates an Envoy proxy in front of GMS that lost its upstream. A read is a GET
        /aspects/{urn}?aspect=<name> or a GET /entitiesV2/{urn} whose aspects List(...) names
        it (or that has no aspects parameter: all of them); what GMS holds does not matter, as
        the proxy answers before GMS authenticates, routes or records anything. One count per
        aspect: a call replaces the previous count of aspect_name, and 0 disarms it.
        """
        check_aspect_name(aspect_name)  # a typo would leave the fault silently unarmed
        if count < 0:
            raise ValueError(f"count cannot be negative: {count}")
        with self._lock:
            self._garbles_left[aspect_name] = count

    @property
    def garbled_replies(self) -> int:
        """How many requests garble_reads() answered."""
        with self._lock:
            return self._garbled_replies

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
        return self._store.refused

    def results(self, urn: str) -> list[JsonDict]:
        return self._store.results(urn)

    def last_result(self, urn: str) -> JsonDict | None:
        return self._store.last_result(urn)

    def accepted_times(self, urn: str) -> list[tuple[str, float]]:
        """(status, wall-clock time) of each result of urn as it was accepted, in order.

        For latencies measured across processes: ``time.time()`` is one clock for all of
        them, so a sender's timestamp and this one can be subtracted.
        """
        return self._store.accepted_times(urn)

    def aspect(self, urn: str, aspect_name: str) -> JsonDict | None:
        return self._store.get(urn, aspect_name)

    def urns(self, entity_type: str) -> list[str]:
        return self._store.urns(entity_type)

    def put_aspect(self, urn: str, aspect_name: str, value: JsonDict) -> None:
        """Seeds state as if it were already in GMS's database: validated, but never refused.

        A seeded result counts as accepted, so it also shows in results() and last_result().
        """
        entity_type = entity_type_of(urn)
        valid = check_aspect(aspect_name, value)
        self._store.seed(Proposal(entity_type, check_urn(entity_type, urn), aspect_name, valid))

    def propose(self, urn: str, aspect_name: str, value: JsonDict) -> None:
        """Writes an aspect as a client's ingestProposal would: validated, subject to GMS's
        rules (PayloadError, or RuntimeError with GMS's reason when it refuses), and logged
        as a MetadataChangeLog on the Events API."""
        entity_type = entity_type_of(urn)
        valid = check_aspect(aspect_name, value)
        proposal = Proposal(entity_type, check_urn(entity_type, urn), aspect_name, valid)
        refusal = self._store.write_all([proposal])
        if refusal is not None:
            raise RuntimeError(refusal)

    @property
    def change_log(self) -> list[LoggedChange]:
        """Every MetadataChangeLog GMS emitted so far, in order, with its offset."""
        return self._store.events.all()

    def write_request(self, body: str) -> str:
        """What every producer does before it queues body: write the message's input as the
        request's input aspect, as GMS accepts it (so it is in the change log too). Returns
        body, to send.

        A body with no input to write (not a message, truncated, or an input GMS would refuse)
        writes nothing, as a producer with nothing valid to write could not have written it.
        """
        try:
            envelope = parse_envelope(body)
        except MessageError:
            return body
        if envelope.input is not None:
            with contextlib.suppress(PayloadError):
                self.propose(envelope.urn, INPUT_ASPECT, envelope.input)
        return body

    def wait_for_status(
        self, urn: str, statuses: Set[str], timeout_seconds: float
    ) -> JsonDict | None:
        """The latest accepted result of urn with one of statuses, even if it was since updated.

        Searching the history rather than the current value lets a caller wait for a short-lived
        status such as RUNNING without racing the executor.
        """
        return self._store.wait_for_status(urn, statuses, timeout_seconds)

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
        """Every request, in GMS's order: faults, web app, authentication, then the API."""
        fault = self._fault(request)
        if fault is not None:
            return fault
        path = below_gms(request)
        if path is None:  # the web app answers everything outside /gms
            return 200, _HTML, "text/html; charset=utf-8"
        if path != "/config" and not self._authorized(request):
            answer = 401, error_body(401, UNAUTHORIZED)
        else:
            answer = self._handle(request)
        return answer[0], json.dumps(answer[1]).encode(), _JSON_TYPE

    def _fault(self, request: Request) -> Response | None:
        """Logs request, then answers it if fail_with() or garble_reads() says so, else None."""
        with self._lock:
            self._served.append(
                ServedRequest(request.method, request.path, dict(request.query), time.time())
            )
            failing = self._failing_status
            if failing is not None:
                self._failed_requests += 1
                body = error_body(failing, f"stand-in failing with {failing}")
                return failing, json.dumps(body).encode(), _JSON_TYPE
            if self._take_garble(request):
                self._garbled_replies += 1
                return _GARBLED
            if request.body:
                self._raw_bodies.append(request.body)
            return None

    def _take_garble(self, request: Request) -> bool:
        """Caller holds the lock. Uses one count of every armed aspect request asks for."""
        armed = [name for name, left in self._garbles_left.items() if left]
        asked = [name for name in armed if reads_aspect(request, name)]
        for name in asked:
            self._garbles_left[name] -= 1
        return bool(asked)

    def _authorized(self, request: Request) -> bool:
        if self._token is None:
            return True
        given = request.headers.get("Authorization") or ""
        return hmac.compare_digest(given.encode(), f"Bearer {self._token}".encode())

    def _handle(self, request: Request) -> Answer:
        """Everything below /gms. A bug here must fail the tests, hence 500 plus a rejection."""
        try:
            return route(self._store, request)
        except PayloadError as exc:  # what GMS would answer 400 to
            return self._reject(str(exc), 400)
        except Exception as exc:
            return self._reject(f"stand-in error on {request.path}: {exc!r}", 500)

    def _reject(self, reason: str, status: int) -> Answer:
        with self._lock:
            self._rejected.append(reason)
        return status, error_body(status, reason)


def _checked_latency(seconds: float) -> float:
    if seconds < 0:
        raise ValueError(f"latency cannot be negative: {seconds}")
    return seconds
