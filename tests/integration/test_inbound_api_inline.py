"""The inbound API with the core in the serving process (tests, Socket Mode): the same answers as with executors."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import httpx

from bot.messages import ButtonAction
from fakes.slack import FakeSlackApi
from tests.integration.slack_support import CHANNEL, SLACK_TEST_CONFIG, posted_request, serve_touch_catalog, wait_until

TOKEN = f"inline-token-{uuid.uuid4().hex}"
API_CONFIG = SLACK_TEST_CONFIG.replace("allow: {groups: [requesters]}", "allow: {groups: [requesters], clients: [ci]}") + (
    f"api:\n  clients:\n    ci: {{token_sha256: {hashlib.sha256(TOKEN.encode()).hexdigest()}, rate_per_minute: 6000, rate_burst: 100}}\n"
)
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


def test_inline_a_client_request_waits_for_a_human_approval_then_runs(slack: FakeSlackApi, tmp_path: Path, sqlite_url: str) -> None:
    with serve_touch_catalog(slack, tmp_path, sqlite_url, config=API_CONFIG) as server:
        body = {"runbook": "touch", "text": "svc v2 in production", "channel": CHANNEL}
        answer = server.http.post("/api/v1/requests", content=json.dumps(body), headers={**HEADERS, "Idempotency-Key": "one"})
        assert answer.status_code == 202, answer.text

        message = posted_request(server.opsbot, slack, "touch svc")
        # The message can be in Slack a moment before the API request records which request it became.
        wait_until(lambda: status(server.http, answer.headers["location"], "pending_approval"), 30, what="pending_approval")
        assert server.slack_user(slack, "U0A00").click(message, ButtonAction.APPROVE).status_code == 200

        done = wait_until(lambda: status(server.http, answer.headers["location"], "succeeded"), 30, what="the request to succeed")
        assert done["client"] == "ci"
        server.wait_idle()


def test_inline_a_builtin_is_not_a_runbook_the_api_can_ask_for(slack: FakeSlackApi, tmp_path: Path, sqlite_url: str) -> None:
    with serve_touch_catalog(slack, tmp_path, sqlite_url, config=API_CONFIG) as server:
        body = {"runbook": "lock", "text": "svc in production", "channel": CHANNEL}
        answer = server.http.post("/api/v1/requests", content=json.dumps(body), headers={**HEADERS, "Idempotency-Key": "two"})

        assert answer.status_code == 422
        assert answer.json()["detail"].startswith("There is no runbook 'lock'.")


def status(http: httpx.Client, location: str, wanted: str) -> dict[str, object] | None:
    """``GET`` the request; its body once its state is ``wanted``."""
    reply = http.get(location, headers=HEADERS)
    assert reply.status_code == 200, reply.text
    body: dict[str, object] = reply.json()
    return body if body["state"] == wanted else None
