"""Faults the GMS stand-in can be told to inject: an outage (every request gets one status)
and a proxy that garbles reads. Both answer before authentication, routing or recording,
as a load balancer or a proxy in front of GMS would."""

from __future__ import annotations

import json
import threading

from remote_executor.sandbox.gms_routes import reads_aspect
from remote_executor.sandbox.gms_schema import check_aspect_name, error_body
from remote_executor.sandbox.loopback import Request, Response

_JSON_TYPE = "application/json"
# What an Envoy proxy in front of GMS answers when it loses its upstream mid-request.
_GARBLED: Response = (
    200,
    b"upstream connect error or disconnect/reset before headers",
    "text/plain",
)


class Faults:
    """The stand-in's fault switches (a base of GmsStandIn)."""

    def _init_faults(self) -> None:
        self._fault_lock = threading.Lock()  # guards the fields below
        self._failing_status: int | None = None
        self._failed_requests = 0
        self._garbles_left: dict[str, int] = {}
        self._garbled_replies = 0

    def fail_with(self, status: int | None) -> None:
        """While set, every request gets this HTTP status (e.g. 503); None returns to normal.

        Imitates a GMS behind a load balancer with no healthy backend: the failure comes before
        authentication and routing, for any method and path, and nothing is recorded, not even
        raw_bodies; only served logs the request. It wins over garble_reads().
        """
        with self._fault_lock:
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
        with self._fault_lock:
            self._garbles_left[aspect_name] = count

    @property
    def garbled_replies(self) -> int:
        """How many requests garble_reads() answered."""
        with self._fault_lock:
            return self._garbled_replies

    @property
    def failed_requests(self) -> int:
        """How many requests fail_with() answered."""
        with self._fault_lock:
            return self._failed_requests

    def _injected_fault(self, request: Request) -> Response | None:
        """The answer fail_with() or garble_reads() gives request, else None."""
        with self._fault_lock:
            failing = self._failing_status
            if failing is not None:
                self._failed_requests += 1
                body = error_body(failing, f"stand-in failing with {failing}")
                return failing, json.dumps(body).encode(), _JSON_TYPE
            if self._take_garble(request):
                self._garbled_replies += 1
                return _GARBLED
            return None

    def _take_garble(self, request: Request) -> bool:
        """Caller holds the fault lock. Uses one count of every armed aspect request asks for."""
        armed = [name for name, left in self._garbles_left.items() if left]
        asked = [name for name in armed if reads_aspect(request, name)]
        for name in asked:
            self._garbles_left[name] -= 1
        return bool(asked)
