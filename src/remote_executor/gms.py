"""The GMS client: write a request's result, read aspects, and check the server.

Transient failures (connection, timeout, 5xx, 429) are retried with jittered
exponential backoff for ``retry_seconds``; every 4xx raises at once. A 200 whose body
is not the JSON GMS sends (a proxy's page, a truncated body) is GmsUnavailableError,
naming what came back, and is not retried.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

import requests
from tenacity import Retrying as _Retrying
from tenacity import (
    retry_if_exception_type,
    stop_after_delay,
    wait_random_exponential,
)

from remote_executor.errors import (
    GmsAuthError,
    GmsRejectedError,
    GmsUnavailableError,
    NotGmsError,
)
from remote_executor.models import TaskResult

RESULT_ASPECT = "dataHubExecutionRequestResult"
INPUT_ASPECT = "dataHubExecutionRequestInput"
SIGNAL_ASPECT = "dataHubExecutionRequestSignal"
TIMEOUT_SECONDS = 30
# How much of an unexpected body an error message quotes.
QUOTED_CHARS = 100
WRONG_URL_HINT = (
    "the URL reaches the DataHub web app, not GMS; "
    "for DataHub Cloud use https://<company>.acryl.io/gms"
)


@dataclass(frozen=True)
class RequestState:
    """What GMS holds about a request before it runs: its result, signal and input aspects,
    each None when absent."""

    result: dict[str, Any] | None
    signal: dict[str, Any] | None
    input: dict[str, Any] | None = None


class Reporter(Protocol):
    """What the worker needs from GMS."""

    def report(self, urn: str, result: TaskResult) -> None:
        """Write the request's result aspect; raises GmsError if it was not accepted."""
        ...

    def read_result(self, urn: str) -> dict[str, Any] | None:
        """The request's current result aspect, or None."""
        ...

    def read_input(self, urn: str) -> dict[str, Any] | None:
        """The request's input aspect (for truncated messages), or None."""
        ...

    def read_signal(self, urn: str) -> dict[str, Any] | None:
        """The request's signal aspect (a KILL asks to cancel it), or None."""
        ...

    def read_state(self, urn: str) -> RequestState:
        """The request's result, signal and input together, in one call where GMS allows it."""
        ...

    def check_token(self) -> None:
        """Raise GmsAuthError while GMS refuses the token."""
        ...


def _proposal(urn: str, aspect_name: str, value: str) -> dict[str, Any]:
    return {
        "proposal": {
            "entityType": urn.split(":")[2],
            "entityUrn": urn,
            "changeType": "UPSERT",
            "aspectName": aspect_name,
            "aspect": {"contentType": "application/json", "value": value},
        },
        "async": "false",
    }


class GmsClient:
    """GMS over HTTP, with the headers and payloads of DESIGN.md."""

    def __init__(self, url: str, token: str | None, retry_seconds: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self._retry_seconds = retry_seconds
        self._local = threading.local()
        self._headers = {"X-RestLi-Protocol-Version": "2.0.0"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"

    @property
    def _session(self) -> requests.Session:
        # One session per thread: requests.Session is not documented as thread-safe.
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers.update(self._headers)
            self._local.session = session
        return session

    def send(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One call to GMS below its URL, retried while transient; raises GmsError."""
        url = f"{self.url}{path}"
        for attempt in _Retrying(
            retry=retry_if_exception_type(GmsUnavailableError),
            wait=wait_random_exponential(multiplier=0.5, max=15),
            stop=stop_after_delay(self._retry_seconds),
            reraise=True,
        ):
            with attempt:
                return self._once(method, url, **kwargs)
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    def _once(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        try:
            response = self._session.request(method, url, timeout=TIMEOUT_SECONDS, **kwargs)
        except requests.RequestException as exc:
            raise GmsUnavailableError(f"GMS at {self.url} could not be reached: {exc}") from exc
        status = response.status_code
        if status == 429 or status >= 500:
            raise GmsUnavailableError(f"GMS answered {status} for {method} {url}")
        if status in (401, 403):
            raise GmsAuthError(
                f"GMS refused the token ({status}) for {method} {url}: check DATAHUB_GMS_TOKEN "
                "(a personal access token from Settings > Access Tokens)",
                status,
            )
        if status >= 400 and status != 404:
            raise GmsRejectedError(
                f"GMS answered {status} for {method} {url}: {response.text[:500]}", status
            )
        if status != 404 and "html" in response.headers.get("Content-Type", ""):
            raise NotGmsError(f"{self.url} answers HTML: {WRONG_URL_HINT}")
        return response

    def report(self, urn: str, result: TaskResult) -> None:
        self._write(urn, RESULT_ASPECT, result.to_json())

    def write_input(self, urn: str, input_value: dict[str, Any]) -> None:
        """Write a request's input aspect, as the UI's resolver does before anything runs."""
        self.write_aspect(urn, INPUT_ASPECT, input_value)

    def write_aspect(self, urn: str, aspect_name: str, value: dict[str, Any]) -> None:
        """UPSERT one aspect of any entity (the entity type is the urn's)."""
        self._write(urn, aspect_name, json.dumps(value))

    def _write(self, urn: str, aspect_name: str, value: str) -> None:
        body = _proposal(urn, aspect_name, value)
        self.send("POST", "/aspects?action=ingestProposal", json=body)

    def read_aspect(self, urn: str, aspect_name: str) -> dict[str, Any] | None:
        """The latest value of one aspect, None when GMS has none."""
        path = f"/aspects/{quote(urn, safe='')}?aspect={aspect_name}&version=0"
        response = self.send("GET", path)
        if response.status_code == 404:
            return None
        # {"aspect": {"com.linkedin.execution.ExecutionRequestResult": {...}}}: the value sits
        # under the record's full name, the one member of the Rest.li union.
        wrapped = _json_object(response).get("aspect")
        if not isinstance(wrapped, dict) or len(wrapped) != 1:
            raise _unexpected(response, "JSON without one aspect in an 'aspect' object")
        [value] = wrapped.values()
        if not isinstance(value, dict):
            raise _unexpected(response, "an aspect value that is not a JSON object")
        return value

    def read_state(self, urn: str) -> RequestState:
        """Result, signal and input in one GET of Rest.li's entitiesV2 resource (GMS since early
        2022).

        GMS answers 200 even for a request it has never heard of (with only the key aspect,
        which it makes up from the urn), so a 404 means the endpoint itself is missing.
        """
        aspects_wanted = f"List({RESULT_ASPECT},{SIGNAL_ASPECT},{INPUT_ASPECT})"
        path = f"/entitiesV2/{quote(urn, safe='')}?aspects={aspects_wanted}"
        response = self.send("GET", path)
        if response.status_code == 404:
            raise GmsRejectedError(
                f"GMS answered 404 for GET {response.url}: this GMS has no /entitiesV2 "
                "endpoint (DataHub added it in early 2022); upgrade DataHub",
                404,
            )
        aspects = _json_object(response).get("aspects")
        if not isinstance(aspects, dict):
            raise _unexpected(response, "JSON without an 'aspects' object")
        return RequestState(
            _enveloped_value(response, aspects, RESULT_ASPECT),
            _enveloped_value(response, aspects, SIGNAL_ASPECT),
            _enveloped_value(response, aspects, INPUT_ASPECT),
        )

    def read_result(self, urn: str) -> dict[str, Any] | None:
        return self.read_aspect(urn, RESULT_ASPECT)

    def read_input(self, urn: str) -> dict[str, Any] | None:
        return self.read_aspect(urn, INPUT_ASPECT)

    def read_signal(self, urn: str) -> dict[str, Any] | None:
        return self.read_aspect(urn, SIGNAL_ASPECT)

    def server_config(self) -> dict[str, Any]:
        """GET /config; NotGmsError when the URL is not GMS (HTML, or JSON without noCode)."""
        response = self.send("GET", "/config")
        try:
            config = response.json()
        except ValueError as exc:
            raise NotGmsError(f"{self.url}/config is not JSON: {WRONG_URL_HINT}") from exc
        if response.status_code == 404 or not isinstance(config, dict) or "noCode" not in config:
            raise NotGmsError(f"{self.url}/config is not a GMS config: {WRONG_URL_HINT}")
        return config

    def check_token(self) -> None:
        """Read an aspect, which needs a valid token when GMS enforces auth; GmsAuthError if not."""
        self.read_result("urn:li:dataHubExecutionRequest:remote-executor-token-check")


def _json_object(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:  # requests' JSONDecodeError, or bytes that are not text
        raise _unexpected(response, "a body that is not JSON") from exc
    if not isinstance(body, dict):
        raise _unexpected(response, "JSON that is not an object")
    return body


def _enveloped_value(
    response: requests.Response, aspects: dict[str, Any], aspect_name: str
) -> dict[str, Any] | None:
    """The value of one EnvelopedAspect of an EntityResponse, None when GMS has none."""
    if aspect_name not in aspects:
        return None
    envelope = aspects[aspect_name]
    value = envelope.get("value") if isinstance(envelope, dict) else None
    if not isinstance(value, dict):
        raise _unexpected(response, f"{aspect_name} without a JSON object as its value")
    return value


def _unexpected(response: requests.Response, what: str) -> GmsUnavailableError:
    """Says what GMS answered, quoting the start of the body (never a header: no token)."""
    content_type = response.headers.get("Content-Type") or "no Content-Type"
    start = response.content[:QUOTED_CHARS].decode("utf-8", errors="replace")
    return GmsUnavailableError(
        f"GMS answered {response.status_code} ({content_type}) for {response.request.method} "
        f"{response.url} with {what}: {start!r}"
    )


class MemoryReporter:
    """In-memory twin of GmsClient for unit tests: keeps every result it is told."""

    def __init__(self) -> None:
        self.results: dict[str, list[TaskResult]] = {}
        self.inputs: dict[str, dict[str, Any]] = {}
        self.signals: dict[str, dict[str, Any]] = {}
        self.fail_with: Exception | None = None
        self.refuse_token: GmsAuthError | None = None
        self._lock = threading.Lock()

    def report(self, urn: str, result: TaskResult) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        with self._lock:
            self.results.setdefault(urn, []).append(result)

    def read_result(self, urn: str) -> dict[str, Any] | None:
        with self._lock:
            history = self.results.get(urn)
            return json.loads(history[-1].to_json()) if history else None

    def read_input(self, urn: str) -> dict[str, Any] | None:
        return self.inputs.get(urn)

    def read_signal(self, urn: str) -> dict[str, Any] | None:
        return self.signals.get(urn)

    def read_state(self, urn: str) -> RequestState:
        # Through the single reads, so that a test overriding one of them affects this too.
        return RequestState(self.read_result(urn), self.read_signal(urn), self.read_input(urn))

    def check_token(self) -> None:
        if self.refuse_token is not None:
            raise self.refuse_token

    def statuses(self, urn: str) -> list[str]:
        """The statuses reported for a request, in order."""
        with self._lock:
            return [result.status.value for result in self.results.get(urn, [])]
