"""`opsbot serve` with default settings keeps its log to lines a person can act on.

One real server (two workers, no PROMETHEUS_MULTIPROC_DIR, Slack unreachable) gets clients
that hang up mid-body, then a SIGTERM to its whole process group as Ctrl-C or `timeout`
sends it: no multiprocess warning, one line per worker for Slack, one throttled line for the
disconnects, no traceback, and a clean exit.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import time
from pathlib import Path

import httpx

from tests.integration.serve_support import fake_cluster, fake_slack, opsbot_serve, serve_environment, write_config
from tests.integration.slack_support import migrated

DISCONNECTS = 20


def test_default_serve_logs_one_line_per_event_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    with fake_slack() as slack, fake_cluster() as kube:
        config = write_config(tmp_path, kube)
        env = serve_environment(
            slack,
            database_url=migrated(f"sqlite:///{tmp_path}/opsbot.db"),
            config_path=config,
            instance_id="quiet",
            metrics_dir=tmp_path / "unused",
            SLACK_API_URL=f"http://127.0.0.1:{_closed_port()}/api/",
        )
        env.pop("PROMETHEUS_MULTIPROC_DIR")
        with opsbot_serve("quiet", env, tmp_path, workers=2, wait=False) as server:
            _wait_for_healthz(server.port, server.output)
            _wait_for(lambda: server.stderr().count("opsbot is serving") == 2, server.output)  # both workers up
            for _ in range(DISCONNECTS):
                _hang_up_mid_body(server.port)
            _wait_for(lambda: "disconnected" in server.stderr(), server.output)
            os.killpg(server.process.pid, signal.SIGTERM)
            code = server.process.wait(timeout=90)
            log = server.stderr()

    events = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    text = "\n".join(entry["event"] + entry.get("error", "") for entry in events)
    assert code == 0, log
    assert "Traceback" not in log and "Exception in ASGI application" not in text
    assert "PROMETHEUS_MULTIPROC_DIR" not in text
    assert "exited with code" not in text
    assert not [entry for entry in events if entry["level"] == "error" and "Slack" not in entry["event"]], log
    slack_lines = [entry["event"] for entry in events if "Slack" in entry["event"]]
    assert 1 <= len(slack_lines) <= 2, slack_lines  # one per worker, in opsbot's words
    assert all("Slack unreachable at http://127.0.0.1:" in line for line in slack_lines), slack_lines
    disconnect_lines = [entry for entry in events if "disconnected" in entry["event"]]
    assert 1 <= len(disconnect_lines) <= 2, disconnect_lines  # throttled: at most one a minute per worker


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _hang_up_mid_body(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(
            b"POST /slack/events HTTP/1.1\r\nHost: opsbot\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 5000\r\n\r\ncommand=%2Fops&text=dep"
        )


def _wait_for_healthz(port: int, output: object) -> None:
    def healthy() -> bool:
        with contextlib.suppress(httpx.TransportError):
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
        return False

    _wait_for(healthy, output)


def _wait_for(condition: object, output: object, timeout: float = 90.0) -> None:
    assert callable(condition) and callable(output)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"condition not met within {timeout} s:\n{output()}")
