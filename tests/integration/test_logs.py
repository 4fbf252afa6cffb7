"""What ``opsbot serve`` prints: one JSON object per line, request fields where a request is handled, no secret ever.

The server runs as in production (two uvicorn workers, ``OPSBOT_LOG_FORMAT=json``) with
distinctive secret values, some from ``*_FILE`` variables as Kubernetes mounts them. The test
drives the paths that log (commands, a run, a usage error, a Slack ``ok: false``, forged and
stale requests), then reads every byte the processes wrote, plus ``/metrics`` and ``/readyz``.
Two refused starts (an invalid config, an unreachable database) must not print secrets either.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from bot.store.states import RequestState
from fakes.kubernetes import FakeKubernetesServer
from fakes.slack import FakeSlackApi
from tests.integration.serve_support import (
    CHANNELS,
    DEVELOPER,
    USERS,
    DatabaseView,
    command_body,
    fake_cluster,
    free_port,
    opsbot_serve,
    run_cli,
    serve_environment,
    write_config,
)
from tests.integration.slack_support import migrated

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

BOT_TOKEN = "xoxb-SECRET-bot-4b7e21"  # made-up values the output must never contain
SIGNING_SECRET = "sig-SECRET-sign-9c03d5"
APP_TOKEN = "xapp-SECRET-app-77e1a0"
DB_PASSWORD = "pw-SECRET-db-5f3a8c"
SECRETS = (BOT_TOKEN, SIGNING_SECRET, APP_TOKEN, DB_PASSWORD)
FRAGMENTS = ("bot-4b7e21", "sign-9c03d5", "app-77e1a0", "db-5f3a8c")
"""Tails of the secrets: a value cut or partly masked must not leak either."""


@pytest.fixture
def kube() -> Iterator[FakeKubernetesServer]:
    with fake_cluster() as server:
        yield server


@pytest.fixture
def slack() -> Iterator[FakeSlackApi]:
    with FakeSlackApi(token=BOT_TOKEN, users=USERS, channels=CHANNELS) as fake:
        yield fake


@dataclass(frozen=True)
class Pod:
    env: dict[str, str]
    database_url: str


@pytest.fixture
def pod(tmp_path: Path, postgres_url: str, kube: FakeKubernetesServer, slack: FakeSlackApi) -> Pod:
    """A pod's environment: the signing secret and the database URL (with a password) come from files."""
    database_url = migrated(make_url(postgres_url).set(password=DB_PASSWORD).render_as_string(hide_password=False))
    secret_files = tmp_path / "secrets"
    secret_files.mkdir()
    (secret_files / "signing-secret").write_text(SIGNING_SECRET + "\n")
    (secret_files / "database-url").write_text(database_url + "\n")
    env = serve_environment(
        slack, database_url="unused", config_path=write_config(tmp_path, kube), instance_id="logs", metrics_dir=tmp_path / "metrics",
        SLACK_APP_TOKEN=APP_TOKEN, SLACK_SIGNING_SECRET_FILE=str(secret_files / "signing-secret"),
        OPSBOT_DATABASE_URL_FILE=str(secret_files / "database-url"),
    )  # fmt: skip
    del env["SLACK_SIGNING_SECRET"], env["OPSBOT_DATABASE_URL"]
    return Pod(env, database_url)


def test_serve_logs_json_with_request_fields_and_never_a_secret(tmp_path: Path, slack: FakeSlackApi, pod: Pod) -> None:
    db = DatabaseView(pod.database_url)
    try:
        with opsbot_serve("logs", pod.env, tmp_path, workers=2) as server:
            assert server.command(slack, DEVELOPER, "help", secret=SIGNING_SECRET).status_code == 200
            assert "Usage" in server.command(slack, DEVELOPER, "deploy chekout 1.4.2", secret=SIGNING_SECRET).json()["text"]
            server.command(slack, DEVELOPER, "deploy checkout 1.4.2 to staging", secret=SIGNING_SECRET)
            first = db.wait_for_request()
            db.wait_for_state(first.id, RequestState.SUCCEEDED, timeout=60)
            slack.fail_next("chat.postMessage", "not_in_channel")
            server.command(slack, DEVELOPER, "deploy checkout 1.4.3 to staging", secret=SIGNING_SECRET)
            unposted = db.wait_for_request(after=first.id)
            db.wait_for_state(unposted.id, RequestState.SUCCEEDED, timeout=60)
            forged = command_body(slack, DEVELOPER, "deploy checkout 6.6.6 to production")
            refused = [
                server.post_signed(forged, secret="not-the-signing-secret"),
                server.post_signed(forged, secret=SIGNING_SECRET, timestamp=int(time.time()) - 600),
                server.http.post("/slack/events", content=forged, headers={"Content-Type": "application/x-www-form-urlencoded"}),
            ]
            assert [response.status_code for response in refused] == [401, 401, 401]
            probes = server.http.get("/metrics").text + server.http.get("/readyz").text
            exit_code = server.stop()
        output = server.output()
    finally:
        db.close()

    assert exit_code == 0, output
    assert_no_secret(output + probes)
    lines = json_lines(output)
    created = only(lines, event=f"request #{first.id} created: approved")
    assert fields(created, "request_id", "user", "runbook", "outcome") == (first.id, DEVELOPER, "deploy", "approved")
    finished = only(lines, event=f"run of request #{first.id} finished: succeeded")
    assert fields(finished, "request_id", "user", "runbook", "outcome", "runner") == (first.id, DEVELOPER, "deploy", "succeeded", "logs")
    slack_failure = only(lines, event="Slack chat.postMessage failed: not_in_channel")
    assert slack_failure["level"] == "warning"
    assert fields(slack_failure, "request_id", "user", "runbook") == (unposted.id, DEVELOPER, "deploy"), "the failure says whose request"
    refusals = [line for line in lines if "(HTTP 401)" in line["event"]]
    assert [(line["level"], line["logger"]) for line in refusals] == [("warning", "bot.slack.signatures")] * 3, (
        "one line per refused request"
    )
    reasons = " | ".join(line["event"] for line in refusals)
    for reason in ("signature does not match", "stale timestamp", "no Slack signature headers"):
        assert reason in reasons
    assert "6.6.6" not in output and "v0=" not in output, "neither the body nor the signature of a refused request is logged"


def test_refused_starts_print_sentences_without_secrets(tmp_path: Path, pod: Pod) -> None:
    broken_config = tmp_path / "broken.yaml"
    broken_config.write_text("services: {checkout: {environments: 3}}\n")
    unreachable = make_url(pod.database_url).set(host="127.0.0.1", port=free_port())
    (tmp_path / "secrets" / "unreachable-url").write_text(unreachable.render_as_string(hide_password=False))

    invalid_config = run_cli({**pod.env, "OPSBOT_CONFIG": str(broken_config)}, "serve")
    no_database = run_cli({**pod.env, "OPSBOT_DATABASE_URL_FILE": str(tmp_path / "secrets" / "unreachable-url")}, "serve")

    assert invalid_config.returncode == 2
    assert "error: config:" in invalid_config.stderr
    assert no_database.returncode == 2
    assert "error: cannot reach the database (OperationalError" in no_database.stderr
    for result in (invalid_config, no_database):
        assert result.stderr.rstrip().endswith("opsbot serve did not start.")
        assert_no_secret(result.stdout + result.stderr)


# -- helpers -------------------------------------------------------------------------------------


def assert_no_secret(text: str) -> None:
    for secret in (*SECRETS, *FRAGMENTS):
        assert secret not in text, f"a secret ({secret[:6]}…) was printed"


def json_lines(output: str) -> list[dict[str, Any]]:
    """Every line, parsed; each must be one JSON object with the four fields the docs promise."""
    parsed = []
    for number, line in enumerate(output.splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            pytest.fail(f"line {number} is not JSON: {line[:300]}")
        assert isinstance(entry, dict), line
        missing = {"ts", "level", "logger", "event"} - set(entry)
        assert not missing, f"line {number} lacks {missing}: {line[:300]}"
        parsed.append(entry)
    return parsed


def only(lines: list[dict[str, Any]], *, event: str) -> dict[str, Any]:
    matching = [line for line in lines if line["event"] == event]
    assert len(matching) == 1, f"{len(matching)} lines say {event!r}"
    return matching[0]


def fields(line: dict[str, Any], *names: str) -> tuple[Any, ...]:
    return tuple(line.get(name) for name in names)
