"""A small threaded JSON-over-HTTP server for the REST fakes (Argo CD, GitHub): bind port 0, record, answer.

Each fake supplies one ``handle(request) -> JsonReply`` function; this module owns sockets,
threads, request recording and the rule that a bug in a fake answers 500 (kept in
``server_errors``) rather than hanging the client.
"""

from __future__ import annotations

import json
import logging
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class JsonRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class JsonReply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[JsonRequest], JsonReply]


class JsonHttpServer:
    """Serves ``handler`` on 127.0.0.1 (a free port unless one is given); use as a context manager."""

    def __init__(self, handler: Handler, *, name: str, port: int = 0) -> None:
        self._handler = handler
        self._name = name
        self._port = port
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.lock = threading.Lock()
        self.requests: list[JsonRequest] = []
        self.server_errors: list[str] = []

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError(f"the fake {self._name} server is not running")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> JsonHttpServer:
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                server._answer(self)

            def do_POST(self) -> None:
                server._answer(self)

            def do_PUT(self) -> None:
                server._answer(self)

            def do_PATCH(self) -> None:
                server._answer(self)

            def do_DELETE(self) -> None:
                server._answer(self)

            def do_HEAD(self) -> None:
                server._answer(self)

            def log_message(self, format: str, *args: Any) -> None:
                logger.debug("fake %s: " + format, server._name, *args)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", self._port), _Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True, name=f"fake-{self._name}"
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> JsonHttpServer:
        return self.start() if self._httpd is None else self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None) -> None:
        self.stop()

    def _answer(self, raw: BaseHTTPRequestHandler) -> None:
        length = int(raw.headers.get("Content-Length") or 0)
        data = raw.rfile.read(length) if length else b""
        parts = urlsplit(raw.path)
        try:
            body = json.loads(data) if data else None
        except ValueError:
            body = data.decode("utf-8", errors="replace")
        request = JsonRequest(raw.command, parts.path, parse_qs(parts.query), {k.lower(): v for k, v in raw.headers.items()}, body)
        with self.lock:
            self.requests.append(request)
        try:
            reply = self._handler(request)
        except Exception:  # a bug in the fake answers like a broken server, and is kept for the test to see
            self.server_errors.append(traceback.format_exc())
            reply = JsonReply(500, {"message": "fake server error"})
        payload = b"" if reply.status == 204 else json.dumps(reply.body).encode()  # a 204 carries no body at all
        raw.send_response(reply.status)
        headers = {"Content-Length": str(len(payload)), **reply.headers}
        if payload:
            headers = {"Content-Type": "application/json", **headers}
        for name, value in headers.items():
            raw.send_header(name, value)
        raw.end_headers()
        if raw.command != "HEAD":  # HEAD answers the headers GET would, without the body (RFC 9110 9.3.2)
            raw.wfile.write(payload)
