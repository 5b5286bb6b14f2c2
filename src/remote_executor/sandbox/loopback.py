"""The HTTP plumbing of the sandbox's stand-ins: a threaded server on 127.0.0.1.

It keeps the port it bound across stop() and start(), so that URLs handed to clients stay
valid through an outage, and stop() cuts kept-alive connections, so that a stopped server
looks down to pooled clients instead of answering on connections it already accepted.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Request:
    """One HTTP request, read whole: the app never touches the socket."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Message
    body: bytes


# (status, body, content type)
Response = tuple[int, bytes, str]
App = Callable[[Request], Response]


class LoopbackServer:
    """Serves app on 127.0.0.1 in a daemon thread; restartable on the port it first bound."""

    def __init__(self, app: App, port: int = 0, name: str = "loopback-http") -> None:
        self._app = app
        self._port = port
        self._name = name
        self._lifecycle = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port; 0 until the first start() when constructed with port 0."""
        return self._port

    def start(self) -> None:
        with self._lifecycle:
            if self._server is not None:
                raise RuntimeError(f"the {self._name} server is already running")
            self._server = _Server(("127.0.0.1", self._port), self._app)
            self._port = self._server.server_address[1]
            self._thread = threading.Thread(
                target=self._server.serve_forever, args=(0.05,), name=self._name, daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Also cuts kept-alive connections, so that clients see the server down."""
        with self._lifecycle:
            if self._server is None:
                return
            self._server.shutdown()
            self._server.server_close()
            self._server.close_connections()
            if self._thread is not None:
                self._thread.join()
            self._server, self._thread = None, None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # SO_REUSEADDR (HTTPServer's default, stated here because restarts depend on it): the
    # connections stop() cut linger in TIME_WAIT on our port, which would refuse the rebind.
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: App) -> None:
        super().__init__(address, _Handler)
        self.app = app
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the CLI's pooled session expects
    # Headers and body go out in two writes: with Nagle's algorithm on, the body waits for
    # the client's delayed ACK of the headers, 40 ms a call on Linux. A real GMS sends at once.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: callers inspect the stand-in's state, not an access log."""

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _dispatch(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        parts = urlsplit(self.path)
        request = Request(self.command, parts.path, parse_qs(parts.query), self.headers, body)
        status, payload, content_type = cast(_Server, self.server).app(request)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
