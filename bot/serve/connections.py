"""Slow and idle clients: what uvicorn's httptools protocol is missing, added in one subclass.

uvicorn (as of 0.55) bounds an idle keep-alive connection (``timeout_keep_alive``) but not a
connection that never finishes its headers, nor how long the headers may grow, nor how many
connections a worker holds: 550 half-sent requests stayed open indefinitely, and 24,000 used up
the file descriptors until real ``/ops`` requests were reset. Its own ``limit_concurrency`` does
not help here: it answers 503 to *every* new request once the count is reached (Slack's
included), and it is only consulted when a request's headers are complete, which a slow client
never does. So each connection gets, on top of uvicorn's behaviour:

- a **header deadline**: the request line and headers must be complete within
  ``header_timeout`` seconds of the connection opening (or of the first byte of the next request
  on a keep-alive connection), else ``408`` and close;
- a **header size cap**: past ``max_header_bytes`` of URL and headers the parser stops and
  uvicorn answers ``400``;
- a **connection cap** that makes room instead of refusing: past ``max_connections``, the
  oldest connection that is not in the middle of a request (still sending its headers, or idle
  between requests) is closed. A flood of slow clients then churns through itself while a real
  request, whose headers arrive in one packet, gets in.

The body's deadline and size are enforced where the body is read (``bot.serve.bodies``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from bot.logs import ThrottledWarning
from bot.settings import Settings

logger = logging.getLogger(__name__)
_refusals = ThrottledWarning(logger)  # one per worker process (each has one event loop); anyone can trigger these

REQUEST_TIMEOUT_ANSWER = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
)
DEFAULT_MAX_HEADER_BYTES = 64 * 1024
"""Slack's headers are well under 2 KiB; nginx's default ``large_client_header_buffers`` allows 32 KiB."""


@dataclass(frozen=True)
class ConnectionLimits:
    """Per HTTP worker: how long headers may take, how large they may be, how many connections may be open."""

    header_timeout: float
    max_connections: int
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        return cls(header_timeout=settings.header_timeout_seconds, max_connections=settings.max_connections)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The uvicorn ``Config``/``run`` arguments that bound clients (``opsbot serve`` and the tests' servers use the same)."""
    return {
        "loop": "uvloop",
        # A partial, not a class: uvicorn builds one protocol per connection by calling it, and
        # with several workers it pickles its config for each (a partial of a module-level class pickles).
        "http": functools.partial(GuardedHttpToolsProtocol, limits=ConnectionLimits.from_settings(settings)),
        "timeout_keep_alive": settings.keep_alive_seconds,
    }


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header deadline, a header size cap and a connection cap (see the module)."""

    def __init__(self, *args: Any, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = limits
        self._awaiting_headers = True
        self._header_bytes = 0
        self._header_deadline: asyncio.TimerHandle | None = None
        self._opened_at = 0.0
        self._request_bytes_seen = False

    # -- connection lifetime -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._opened_at = self.loop.time()
        self._arm_header_deadline()
        if len(self.connections) > self._limits.max_connections:
            self._make_room()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._awaiting_headers:
            self._request_bytes_seen = True
            if self._header_deadline is None:  # the first bytes of a further request on a kept-alive connection
                self._arm_header_deadline()
        super().data_received(data)

    # -- parser callbacks (uvicorn's, plus the header bookkeeping) ---------------------------------

    def on_url(self, url: bytes) -> None:
        self._count_header_bytes(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_header_bytes(len(name) + len(value))
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._awaiting_headers = False
        self._cancel_header_deadline()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        self._awaiting_headers = True
        self._header_bytes = 0
        self._request_bytes_seen = False
        super().on_response_complete()

    # -- helpers ---------------------------------------------------------------------------------

    @property
    def is_closable(self) -> bool:
        """Still sending headers, or idle after an answer: closing it loses no request in progress."""
        between_requests = self.cycle is None or self.cycle.response_complete
        return self._awaiting_headers and between_requests and not self.transport.is_closing()

    def _count_header_bytes(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self._limits.max_header_bytes:
            _refusals.warn("refused a request from %s: headers over %d bytes", _peer(self), self._limits.max_header_bytes)
            # httptools turns an exception from a callback into a parser error; uvicorn then answers 400 and closes.
            raise ValueError("request headers too large")

    def _arm_header_deadline(self) -> None:
        self._cancel_header_deadline()
        self._header_deadline = self.loop.call_later(self._limits.header_timeout, self._headers_too_slow)

    def _cancel_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if not self._awaiting_headers or self.transport.is_closing():
            return
        _refusals.warn("closed a connection from %s: no complete request headers within %g s", _peer(self), self._limits.header_timeout)
        if self._request_bytes_seen:
            self.transport.write(REQUEST_TIMEOUT_ANSWER)
        self.transport.close()

    def _make_room(self) -> None:
        """Over the cap: close the oldest connection between requests (this one, if no other is)."""
        candidates = [other for other in self.connections if isinstance(other, GuardedHttpToolsProtocol) and other.is_closable]
        victim = min((other for other in candidates if other is not self), key=lambda other: other._opened_at, default=self)
        which = "the oldest idle one" if victim is not self else "a new one (every other is mid-request)"
        cap = self._limits.max_connections
        _refusals.warn("%d connections open (OPSBOT_MAX_CONNECTIONS=%d): closed %s", len(self.connections), cap, which)
        victim._cancel_header_deadline()
        victim.transport.close()


def _peer(protocol: HttpToolsProtocol) -> str:
    client = protocol.client
    return client[0] if client else "?"
