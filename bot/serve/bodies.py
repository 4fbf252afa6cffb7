"""Reading a request body with a size limit and a deadline, whatever the request's headers claim.

Why a stream and not ``await request.body()``: Starlette's ``body()`` reads everything first, and
a body sent with ``Transfer-Encoding: chunked`` declares no length at all, so a size check made
after it comes too late (one 400 MiB request could take a pod's whole memory limit). Reading chunk
by chunk, a body is refused as soon as it passes the limit: the server holds at most the limit
plus one chunk, and stops reading from the socket at once.

Why a deadline: uvicorn times out neither a slow body nor slow headers (``bot.serve.connections``
covers the headers). A client trickling a body byte by byte would hold its connection, its task
and its buffer for as long as it likes.
"""

from __future__ import annotations

import asyncio

from starlette.requests import ClientDisconnect, Request


class BodyRefused(Exception):
    """The body was not read to its end; ``status`` is the HTTP answer, ``reason`` a sentence for the log."""

    status = 400

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BodyTooLarge(BodyRefused):
    status = 413


class BodyTooSlow(BodyRefused):
    status = 408


class BodyAbandoned(BodyRefused):
    """The client went away before the body ended (nobody is left to answer)."""


async def read_limited_body(request: Request, *, max_bytes: int, timeout: float) -> bytes:
    """The whole body, or ``BodyTooLarge`` past ``max_bytes`` / ``BodyTooSlow`` past ``timeout`` seconds."""
    declared = _declared_length(request)
    if declared is not None and declared > max_bytes:
        raise BodyTooLarge(f"Content-Length {declared} is over the {max_bytes}-byte limit")
    body = bytearray()
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                body += chunk
                if len(body) > max_bytes:
                    raise BodyTooLarge(f"the body passed the {max_bytes}-byte limit (declared length: {_describe(declared)})")
    except TimeoutError:
        raise BodyTooSlow(f"the body was not complete after {timeout:g} s ({len(body)} bytes received)") from None
    except ClientDisconnect:
        raise BodyAbandoned(f"the client disconnected after {len(body)} bytes of body") from None
    return bytes(body)


def _declared_length(request: Request) -> int | None:
    try:
        return int(request.headers["content-length"])
    except (KeyError, ValueError):
        return None


def _describe(declared: int | None) -> str:
    return "none (chunked)" if declared is None else str(declared)
