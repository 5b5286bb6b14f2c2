"""A stand-in for DataHub GMS (the metadata server's /gms REST API) for tests and the demo.

It serves only what our executor and the `datahub` CLI's datahub-rest sink call, but it checks
every payload with DataHub's own schema classes and imitates the GMS rules we depend on, so
that code passing against it sends what a real GMS accepts. This module is its front door:
lifecycle, the log of requests, and authentication; the faults it can inject are gms_faults'.
Behind it, gms_routes maps the API to gms_reads, gms_writes, gms_search and gms_events, which
answer from the database in gms_store (with its change log), in the wire format of gms_schema;
gms_ui writes what DataHub's UI and scheduler write.

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
from remote_executor.sandbox.gms_faults import Faults
from remote_executor.sandbox.gms_routes import below_gms, route
from remote_executor.sandbox.gms_schema import (
    UNAUTHORIZED,
    Answer,
    JsonDict,
    PayloadError,
    Proposal,
    check_aspect,
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


@dataclass(frozen=True)
class ServedRequest:
    """One request the stand-in answered; ``at`` is when it handled it (``time.time()``)."""

    method: str
    path: str
    query: dict[str, list[str]]
    at: float


class GmsStandIn(Faults):
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
        self._init_faults()
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
    def event_polls(self) -> int:
        """How many Events API polls it has answered: a consumer that polled twice since a
        count was taken has finished its first poll, which set where it reads from."""
        return sum(r.path.endswith("/openapi/v1/events/poll") for r in self.served)

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
        fault = self._injected_fault(request)
        if fault is None and request.body:
            with self._lock:
                self._raw_bodies.append(request.body)
        return fault

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
