"""Bounded requests: a body stops at its limit whatever its headers say; slow clients are cut off.

Issue 15, item 1: an unsigned ``POST /slack/events`` with ``Transfer-Encoding: chunked`` was read
whole before the 1 MB limit applied (400 MiB of body took a pod's memory from 116 to 917 MiB).
Item 2: 550 half-sent requests were all still open after 75 s, and 24,000 used up the file
descriptors until real ``/ops help`` requests were reset.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.serve.asgi import MAX_SLACK_BODY_BYTES
from fakes.slack import FakeSlackApi
from tests.integration.raw_http import closed_by_server, open_slow_client, read_status_line, stream_chunked_body
from tests.integration.slack_support import RunningServer, serve_touch_catalog, wait_until

OFFERED_BYTES = 96 * 1024 * 1024
"""Far over the 1 MB limit (96×), yet quick to send over loopback if a server did read it all."""
SOCKET_BUFFERS_ALLOWANCE = 16 * 1024 * 1024
"""What the kernel may hold between client and server on loopback (send + receive buffers), with room to spare."""


@pytest.fixture
def server(slack: FakeSlackApi, tmp_path: Path, sqlite_url: str) -> Iterator[RunningServer]:
    with serve_touch_catalog(slack, tmp_path, sqlite_url) as running:
        yield running


def port_of(server: RunningServer) -> int:
    return int(server.base_url.rsplit(":", 1)[1])


def test_a_chunked_body_far_over_the_limit_is_refused_after_about_the_limit(server: RunningServer) -> None:
    outcome = stream_chunked_body(
        port_of(server), "/slack/events", total_bytes=OFFERED_BYTES, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )

    assert outcome.status_line.startswith("HTTP/1.1 413"), outcome
    assert not outcome.finished_sending, "the server let the client send the whole body before answering"
    assert outcome.bytes_sent < MAX_SLACK_BODY_BYTES + SOCKET_BUFFERS_ALLOWANCE, outcome


def test_a_chunked_body_under_the_limit_still_reaches_the_signature_check(server: RunningServer) -> None:
    outcome = stream_chunked_body(port_of(server), "/slack/events", total_bytes=256 * 1024, headers={})

    assert outcome.finished_sending
    assert outcome.status_line.startswith("HTTP/1.1 401"), outcome  # read whole, then refused as unsigned


# -- slow clients (issue 15, item 2) --------------------------------------------------------------

SLOW_CLIENTS = 500
"""As many as the issue's attack; safe on 2 cores: the server keeps at most MAX_CONNECTIONS of them, the rest are idle sockets."""
MAX_CONNECTIONS = 100
HEADER_TIMEOUT = 4.0
BODY_TIMEOUT = 2.0
HALF_A_REQUEST = b"POST /slack/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"


@pytest.fixture
def guarded_server(slack: FakeSlackApi, tmp_path: Path, sqlite_url: str) -> Iterator[RunningServer]:
    with serve_touch_catalog(
        slack,
        tmp_path,
        sqlite_url,
        OPSBOT_HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT),
        OPSBOT_BODY_TIMEOUT_SECONDS=str(BODY_TIMEOUT),
        OPSBOT_MAX_CONNECTIONS=str(MAX_CONNECTIONS),
    ) as running:
        yield running
        running.wait_idle()


def test_slow_clients_are_cut_off_while_a_real_command_still_gets_through(guarded_server: RunningServer, slack: FakeSlackApi) -> None:
    port = port_of(guarded_server)
    slow = [open_slow_client(port, sent=HALF_A_REQUEST) for _ in range(SLOW_CLIENTS)]
    try:
        response = guarded_server.slack_user(slack, "U0REQ").command("help")
        still_open = sum(not closed_by_server(sock) for sock in slow)

        assert response.status_code == 200
        assert "Working on" in response.json()["text"]
        slack.wait_for(
            lambda: [e for e in slack.ephemerals(user="U0REQ") if "touch" in e.text or "touch" in str(e.blocks)],
            what="the help text, after the ack",
        )
        assert 0 < still_open <= MAX_CONNECTIONS, f"{still_open} slow clients open while the command was answered"
        wait_until(lambda: all(closed_by_server(sock) for sock in slow), HEADER_TIMEOUT + 20, what="every slow client to be cut off")
        answers = {read_status_line(sock) for sock in slow}
        assert answers <= {"", "HTTP/1.1 408 Request Timeout"}, answers
    finally:
        for sock in slow:
            sock.close()


def test_a_body_that_trickles_is_answered_408(guarded_server: RunningServer) -> None:
    head = HALF_A_REQUEST + b"Content-Length: 1000\r\n\r\n" + b"payload=x"
    sock = open_slow_client(port_of(guarded_server), sent=head)
    try:
        wait_until(lambda: closed_by_server(sock), BODY_TIMEOUT + 20, what="the slow body to be cut off")
        sock.setblocking(True)
        assert read_status_line(sock) == "HTTP/1.1 408 Request Timeout"
    finally:
        sock.close()
