"""HTTP clients that misbehave on purpose, over plain sockets: a huge chunked body, a client that stops mid-request.

httpx cannot do either (it sends a whole request before reading the answer, and never
stalls on purpose), so these speak HTTP/1.1 by hand, exactly as an attacker's script would.
"""

from __future__ import annotations

import contextlib
import select
import socket
import time
from dataclasses import dataclass

CHUNK = 64 * 1024


@dataclass(frozen=True)
class StreamOutcome:
    """What a client streaming a big body saw: the answer's status line, and how much it had sent by then."""

    status_line: str
    bytes_sent: int
    finished_sending: bool


def stream_chunked_body(port: int, path: str, *, total_bytes: int, headers: dict[str, str], timeout: float = 60.0) -> StreamOutcome:
    """POST ``total_bytes`` of body in 64 KiB chunks (``Transfer-Encoding: chunked``, no Content-Length).

    After every chunk the client looks for an answer and stops sending once one arrives (or
    once the server closes the connection), so ``bytes_sent`` bounds what the server could
    have read: at most what it consumed plus the kernel's socket buffers.
    """
    deadline = time.monotonic() + timeout
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        head = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Transfer-Encoding: chunked"]
        head += [f"{name}: {value}" for name, value in headers.items()]
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("ascii"))
        chunk = f"{CHUNK:x}\r\n".encode("ascii") + b"x" * CHUNK + b"\r\n"
        finished = True
        while sent < total_bytes:
            if time.monotonic() > deadline:
                raise AssertionError(f"still sending after {timeout} s ({sent} bytes sent)")
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                finished = False
                break
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                finished = False
                break
            sent += CHUNK
        else:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(b"0\r\n\r\n")
        return StreamOutcome(read_status_line(sock), sent, finished)


def read_status_line(sock: socket.socket) -> str:
    """The first line of the answer ('' if the server closed without one)."""
    received = b""
    with contextlib.suppress(ConnectionResetError, TimeoutError):
        while b"\r\n" not in received:
            data = sock.recv(4096)
            if not data:
                break
            received += data
    return received.split(b"\r\n", 1)[0].decode("latin-1")


def open_slow_client(port: int, *, sent: bytes) -> socket.socket:
    """A connection that sends ``sent`` (part of a request) and then nothing more."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(sent)
    sock.setblocking(False)
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server has answered or closed this connection (it never waits)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except ValueError:  # already closed on our side
        return True
    return bool(readable)
