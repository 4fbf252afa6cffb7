"""HTTP plumbing of the fake Slack server: decoding requests, writing replies.

Kept apart from Slack semantics so the protocol details (form vs JSON vs
multipart bodies, bearer tokens, quiet logging, daemon threads) live in one
place and the rest of the fake only sees dicts.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from .records import ApiError, JsonDict

JSON_FIELDS = ("blocks", "attachments", "files", "metadata", "outputs")
"""Form fields slack_sdk sends as JSON strings; decoded when recording calls."""


@dataclass(frozen=True)
class HttpRequest:
    """One decoded request: path without query, lower-cased headers, raw body."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    @property
    def is_json(self) -> bool:
        return self.content_type == "application/json"

    def bearer_token(self) -> str | None:
        """The token from ``Authorization: Bearer ...``, if any."""
        scheme, _, token = self.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        return token.strip() or None


@dataclass(frozen=True)
class HttpReply:
    """What to send back: status, body bytes and headers."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: JsonDict, headers: dict[str, str] | None = None) -> HttpReply:
        return cls(
            status,
            json.dumps(payload).encode("utf-8"),
            {"Content-Type": "application/json; charset=utf-8", **(headers or {})},
        )

    @classmethod
    def text(cls, status: int, text: str) -> HttpReply:
        return cls(status, text.encode("utf-8"), {"Content-Type": "text/plain; charset=utf-8"})

    def payload(self) -> JsonDict:
        """The body as JSON when it is a JSON object, else ``{"text": ...}``."""
        try:
            decoded = json.loads(self.body)
        except ValueError:
            return {"text": self.body.decode("utf-8", errors="replace")}
        return decoded if isinstance(decoded, dict) else {"value": decoded}


def decode_params(request: HttpRequest) -> JsonDict:
    """Arguments from the query string and the body, whatever its encoding.

    Slack reads JSON bodies, form bodies and multipart bodies alike (query
    string arguments too), and structured fields in form bodies arrive as
    JSON strings, decoded here so recorded calls hold real lists.
    """
    params: JsonDict = dict(request.query)
    if request.is_json:
        params.update(_json_object(request.body))
    elif request.content_type == "multipart/form-data":
        params.update(_multipart(request))
    elif request.body:
        params.update(parse_qsl(request.body.decode("utf-8"), keep_blank_values=True))
    return _decode_json_fields(params)


def _json_object(body: bytes) -> JsonDict:
    try:
        decoded = json.loads(body or b"{}")
    except ValueError as exc:
        raise ApiError("invalid_json") from exc
    if not isinstance(decoded, dict):
        raise ApiError("json_not_object")
    return decoded


def _multipart(request: HttpRequest) -> JsonDict:
    head = f"Content-Type: {request.headers.get('content-type', '')}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + request.body)
    params: JsonDict = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if not isinstance(name, str) or not isinstance(payload, bytes):
            continue
        params[name] = payload if part.get_filename() else payload.decode("utf-8")
    return params


def _decode_json_fields(params: JsonDict) -> JsonDict:
    for key in JSON_FIELDS:
        value = params.get(key)
        if isinstance(value, str):
            with contextlib.suppress(ValueError):  # a bad one stays a string: invalid_*_format
                params[key] = json.loads(value)
    return params


class Dispatcher(Protocol):
    """What the HTTP server hands each decoded request to."""

    def handle(self, request: HttpRequest) -> HttpReply: ...


class FakeHttpServer(ThreadingHTTPServer):
    """Threaded server on a free loopback port whose handlers never block shutdown."""

    request_queue_size = 512  # a real API server does not reset connections under a burst

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, dispatcher: Dispatcher) -> None:
        super().__init__(("127.0.0.1", 0), _RequestHandler)
        self.dispatcher = dispatcher

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def handle_error(self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any) -> None:
        """A client hanging up mid-answer is normal in timeout tests; anything else is reported."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _RequestHandler(BaseHTTPRequestHandler):
    """Decodes the request, asks the dispatcher, writes the reply."""

    server_version = "FakeSlack/1.0"
    disable_nagle_algorithm = True  # one round trip per call, not a Nagle/delayed-ACK stall

    def do_POST(self) -> None:
        self._serve("POST")

    def do_GET(self) -> None:
        self._serve("GET")

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: a test's output should hold its own failures only."""

    def _serve(self, verb: str) -> None:
        assert isinstance(self.server, FakeHttpServer)
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        request = HttpRequest(
            method=verb,
            path=url.path,
            query=dict(parse_qsl(url.query, keep_blank_values=True)),
            headers={key.lower(): value for key, value in self.headers.items()},
            body=self.rfile.read(length) if length else b"",
        )
        reply = self.server.dispatcher.handle(request)
        self.send_response(reply.status)
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)
