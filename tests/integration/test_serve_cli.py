"""``opsbot serve``: refuses clearly when it could not serve safely, and serves for real when it can.

The last test runs the production entry point as a subprocess in its multi-process form
(``uvicorn --factory`` with two HTTP worker processes and an executor, uvloop, httptools,
multiprocess metrics) against the fake Slack Web API.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from bot.cli.main import main
from fakes.slack import FakeSlackApi
from tests.conftest import EXAMPLE_CONFIG, RUNBOOKS
from tests.integration.slack_support import SIGNING_SECRET, migrated, signed_headers

SLACK_VARIABLES = ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN", "SLACK_API_URL", "PROMETHEUS_MULTIPROC_DIR")


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, sqlite_url: str) -> pytest.MonkeyPatch:
    """A valid config and a migrated database; Slack variables unset unless a test sets them."""
    for name in SLACK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"{name}_FILE", raising=False)
    monkeypatch.setenv("OPSBOT_CONFIG", str(EXAMPLE_CONFIG))
    monkeypatch.setenv("OPSBOT_RUNBOOKS_DIR", str(RUNBOOKS))
    monkeypatch.setenv("OPSBOT_DATABASE_URL", migrated(sqlite_url))
    monkeypatch.setattr("bot.cli.serve.configure_logging", lambda *args, **kwargs: None)
    return monkeypatch


def serve(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["serve", *args])
    return result.exit_code, result.output


def test_serve_refuses_without_a_signing_secret_or_bot_token(environment: pytest.MonkeyPatch) -> None:
    code, output = serve()

    assert code == 2
    assert "SLACK_BOT_TOKEN is not set" in output
    assert "SLACK_SIGNING_SECRET is not set" in output
    assert "opsbot serve did not start." in output


def test_socket_mode_needs_an_app_token_but_no_signing_secret(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("SLACK_BOT_TOKEN", "xoxb-1")

    code, output = serve("--socket-mode")

    assert code == 2
    assert "SLACK_APP_TOKEN is not set" in output
    assert "SLACK_SIGNING_SECRET" not in output


def test_serve_refuses_a_database_whose_schema_is_behind(environment: pytest.MonkeyPatch, tmp_path: Path) -> None:
    environment.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    environment.setenv("SLACK_SIGNING_SECRET", "secret")
    environment.setenv("OPSBOT_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")

    code, output = serve()

    assert code == 2
    assert "run `opsbot db upgrade` first" in output


def test_serve_refuses_an_invalid_config(environment: pytest.MonkeyPatch, tmp_path: Path) -> None:
    environment.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    environment.setenv("SLACK_SIGNING_SECRET", "secret")
    broken = tmp_path / "opsbot.yaml"
    broken.write_text("services: {checkout: {environments: 3}}\n")
    environment.setenv("OPSBOT_CONFIG", str(broken))

    code, output = serve()

    assert code == 2
    assert "config:" in output


def test_serve_refuses_an_api_client_whose_signing_key_cannot_be_read(environment: pytest.MonkeyPatch, tmp_path: Path) -> None:
    environment.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    environment.setenv("SLACK_SIGNING_SECRET", "secret")
    config = tmp_path / "opsbot.yaml"
    missing = tmp_path / "nowhere.key"
    config.write_text(EXAMPLE_CONFIG.read_text() + f"api:\n  clients:\n    ci-signed: {{hmac_key_file: {missing}}}\n")
    environment.setenv("OPSBOT_CONFIG", str(config))

    code, output = serve()

    assert code == 2
    assert f"config: api.clients.ci-signed.hmac_key_file={missing}: cannot read the file (No such file or directory)" in output


# -- the real thing ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def slack() -> Iterator[FakeSlackApi]:
    with FakeSlackApi(token="xoxb-serve", users={"U0ALICE": "alice"}, channels={"C0OPS": "ops"}) as fake:
        yield fake


@pytest.mark.slow
def test_opsbot_serve_with_two_workers_answers_slack_and_aggregates_metrics(slack: FakeSlackApi, sqlite_url: str, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "OPSBOT_CONFIG": str(EXAMPLE_CONFIG),
        "OPSBOT_RUNBOOKS_DIR": str(RUNBOOKS),
        "OPSBOT_DATABASE_URL": migrated(sqlite_url),
        "OPSBOT_SCHEDULER": "false",
        "OPSBOT_LOG_FORMAT": "text",
        "OPSBOT_EXECUTORS": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.cli.main", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            wait_until_ready(http, process)
            form = (
                f"command=%2Fops&text=help&user_id=U0ALICE&user_name=alice&channel_id=C0OPS&team_id=T0FAKE"
                f"&response_url={httpx.URL(slack.response_url('C0OPS', 'U0ALICE'))}"
            ).encode()

            ack = http.post("/slack/events", content=form, headers=signed_headers(SIGNING_SECRET, form))

            assert (ack.status_code, ack.json()["text"]) == (200, "Working on `help`…")
            slack.wait_for(lambda: slack.ephemerals(user="U0ALICE"), timeout=15)
            slack.wait_for(lambda: len(slack.calls_to("auth.test")) == 2, timeout=30, what="one token check per worker, at startup")
            metrics = http.get("/metrics").text
            assert 'opsbot_commands_total{command="help",outcome="accepted"} 1.0' in metrics
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=60)[0].decode(errors="replace")
    assert process.returncode == 0, output


def wait_until_ready(http: httpx.Client, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"opsbot serve exited: {process.communicate()[0].decode(errors='replace')}")
        try:
            if http.get("/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError("opsbot serve did not become ready within 60 s")
