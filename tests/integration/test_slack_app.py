"""opsbot's Slack front end end to end: a real server, signed requests over HTTP, the fake Slack Web API.

Each test starts ``bot.serve.asgi`` under uvicorn (uvloop + httptools) on a free port, with the
``touch`` runbook (one approval from ``approvers``) and the read-only ``report`` runbook,
and talks to it exactly as Slack would. What Slack received is read back from the fake;
every blocks payload it received is validated with slack_sdk's models after each test.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlencode

import psycopg
import pytest
from slack_sdk.signature import SignatureVerifier

from bot.audit.events import EventType
from bot.messages import ButtonAction
from bot.store import audit as audit_store
from fakes.slack import RESPONSE_URL_CALL, FakeSlackApi, Message
from tests.conftest import POSTGRES_ADMIN_URL
from tests.doubles import STATE
from tests.integration.slack_support import (
    CHANNEL,
    SIGNING_SECRET,
    RunningServer,
    block_actions_payload,
    fake_slack,
    form_payload,
    latest_message,
    posted_request,
    serve_touch_catalog,
    signed_headers,
    slack_signature,
)

REQUESTER, APPROVER, SECOND_APPROVER, OUTSIDER, GROUP_MEMBER = "U0REQ", "U0A00", "U0A01", "U0OUT", "U0GRP"


@pytest.fixture
def server(slack: FakeSlackApi, tmp_path: Path, sqlite_url: str) -> Iterator[RunningServer]:
    with serve_touch_catalog(slack, tmp_path, sqlite_url) as running:
        yield running
        running.wait_idle()


@pytest.fixture
def server_on_each_database(slack: FakeSlackApi, tmp_path: Path, database_url: str) -> Iterator[RunningServer]:
    with serve_touch_catalog(slack, tmp_path, database_url) as running:
        yield running
        running.wait_idle()


def request_message(server: RunningServer, slack: FakeSlackApi) -> Message:
    return posted_request(server.opsbot, slack, "touch svc")


def wait_for_state(slack: FakeSlackApi, state: str, timeout: float = 10.0) -> None:
    slack.wait_for(lambda: state in latest_message(slack, containing="touch svc").text or None, timeout, what=f"request {state}")


def succeeded(slack: FakeSlackApi, containing: str) -> Message:
    def finished() -> Message | None:
        message = latest_message(slack, containing=containing)
        return message if "succeeded" in message.text else None

    return slack.wait_for(finished, 10, what=f"{containing!r} to succeed")


def ephemeral_to(slack: FakeSlackApi, user: str, containing: str) -> str:
    found = slack.wait_for(
        lambda: [e.text for e in slack.ephemerals(user=user) if containing in e.text or containing in str(e.blocks)],
        what=f"an ephemeral to {user} with {containing!r}",
    )
    return found[-1]


def audit_events(server: RunningServer) -> list[str]:
    with server.opsbot.database.reading() as session:
        return [row.event for row in audit_store.tail(session, limit=1_000)]


def metrics_text(server: RunningServer) -> str:
    return server.http.get("/metrics").text


# -- signing ---------------------------------------------------------------------------------


def test_signing_helper_reproduces_slacks_published_test_vector() -> None:
    body = (
        "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar"
        "&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com"
        "%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )

    signature = slack_signature("8f742231b10e8888abcd99yyyzzz85a5", "1531420618", body)

    assert signature == "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    assert SignatureVerifier("8f742231b10e8888abcd99yyyzzz85a5").generate_signature(timestamp="1531420618", body=body) == signature


def tampered(headers: dict[str, str], change: Callable[[str], str]) -> dict[str, str]:
    """Slack's headers with the signature changed: only the whole, exact signature is accepted."""
    return {**headers, "X-Slack-Signature": change(headers["X-Slack-Signature"])}


def one_char_changed(signature: str) -> str:
    middle = len(signature) // 2
    return signature[:middle] + ("0" if signature[middle] != "0" else "1") + signature[middle + 1 :]


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda body: {"Content-Type": "application/x-www-form-urlencoded"}, id="unsigned"),
        pytest.param(lambda body: signed_headers("not-the-secret", body), id="badly-signed"),
        pytest.param(lambda body: signed_headers(SIGNING_SECRET, body, timestamp=int(time.time()) - 301), id="stale"),
        pytest.param(lambda body: tampered(signed_headers(SIGNING_SECRET, body), lambda sig: sig[:-1]), id="signature-prefix"),
        pytest.param(lambda body: tampered(signed_headers(SIGNING_SECRET, body), lambda sig: sig[:10]), id="signature-short-prefix"),
        pytest.param(lambda body: tampered(signed_headers(SIGNING_SECRET, body), one_char_changed), id="signature-one-char-changed"),
        pytest.param(lambda body: tampered(signed_headers(SIGNING_SECRET, body), lambda sig: sig + "0"), id="signature-extended"),
        pytest.param(lambda body: tampered(signed_headers(SIGNING_SECRET, body), str.upper), id="signature-upper-case"),
    ],
)
def test_requests_slack_did_not_sign_are_refused_and_nothing_runs(server: RunningServer, slack: FakeSlackApi, forge: object) -> None:
    user = server.slack_user(slack, REQUESTER)
    body = user.command_body("touch svc v2 in production")
    assert callable(forge)

    response = server.http.post("/slack/events", content=body, headers=forge(body))

    assert response.status_code == 401
    server.wait_idle()
    assert audit_events(server) == []
    assert [call.method for call in slack.calls] == ["auth.test"], "only the startup token check reached Slack"
    assert STATE.runs == 0


def test_a_replayed_signed_command_is_acted_on_once(server: RunningServer, slack: FakeSlackApi) -> None:
    body = server.slack_user(slack, REQUESTER).command_body("touch svc v2 in production")
    timestamp = int(time.time())
    first = server.post_signed(body, timestamp=timestamp)
    replay = server.post_signed(body, timestamp=timestamp)
    assert (first.status_code, replay.status_code) == (200, 200)
    server.wait_idle()
    assert len([m for m in slack.messages(CHANNEL) if "touch svc v2" in m.text]) == 1
    assert audit_events(server).count("replay_rejected") == 1


def test_an_unsigned_body_bolt_could_not_even_parse_is_a_401_not_a_crash(server: RunningServer, slack: FakeSlackApi) -> None:
    garbage = b"payload=%7Bnot-json"

    unsigned = server.http.post("/slack/events", content=garbage, headers={"Content-Type": "application/x-www-form-urlencoded"})
    signed = server.post_signed(garbage)

    assert (unsigned.status_code, signed.status_code) == (401, 400)
    assert server.http.get("/healthz").status_code == 200


# -- commands --------------------------------------------------------------------------------


def test_help_is_answered_privately_with_every_command(server: RunningServer, slack: FakeSlackApi) -> None:
    response = server.slack_user(slack, REQUESTER).command("help")

    assert response.status_code == 200
    assert response.json()["text"] == "Working on `help`…"
    help_text = ephemeral_to(slack, REQUESTER, "touch {service} {value}")
    assert "report" in help_text or any("report" in str(e.blocks) for e in slack.ephemerals(user=REQUESTER))
    assert slack.calls_to(RESPONSE_URL_CALL), "the reply used the command's response_url"


def test_a_usage_error_is_answered_in_the_ack_and_audited_after_it(server: RunningServer, slack: FakeSlackApi) -> None:
    response = server.slack_user(slack, REQUESTER).command("touch svc v2 in")

    assert response.status_code == 200
    assert response.json()["text"] == "The command ended early; expected &lt;env&gt;.\nUsage: `/ops touch {service} {value} [in {env}]`"
    server.wait_idle()
    assert audit_events(server) == [EventType.COMMAND_REJECTED]
    assert not slack.calls_to(RESPONSE_URL_CALL) and not slack.calls_to("chat.postEphemeral")
    assert 'opsbot_commands_total{command="touch",outcome="usage_error"}' in metrics_text(server)


def test_a_command_whose_text_says_payload_is_parsed_like_any_other(server: RunningServer, slack: FakeSlackApi) -> None:
    # Bolt decodes any form body containing "payload" as an interactivity payload: this one became {} and a 404.
    response = server.slack_user(slack, REQUESTER).command("touch payload-api v2 in")

    assert response.status_code == 200
    assert response.json()["text"].startswith("The command ended early; expected &lt;env&gt;.")


def test_slacks_ssl_check_is_answered_and_nothing_runs(server: RunningServer, slack: FakeSlackApi) -> None:
    body = urlencode({"ssl_check": "1", "token": "legacy-verification-token", "command": "/ops", "text": ""}).encode()

    response = server.post_signed(body)

    assert (response.status_code, response.text) == (200, "")
    server.wait_idle()
    assert audit_events(server) == [] and not slack.calls_to(RESPONSE_URL_CALL)


def test_user_text_is_unescaped_before_parsing_and_escaped_again_when_shown(server: RunningServer, slack: FakeSlackApi) -> None:
    response = server.slack_user(slack, REQUESTER).command("touch svc <!channel>")

    text = response.json()["text"]
    assert "&lt;!channel&gt;" in text and "<!channel>" not in text


def test_a_request_that_needs_approval_posts_plan_policy_expiry_and_buttons(
    server_on_each_database: RunningServer, slack: FakeSlackApi
) -> None:
    server = server_on_each_database

    response = server.slack_user(slack, REQUESTER).command("touch svc v2 in production")

    assert response.json()["text"] == "Working on `touch svc v2 in production`…"
    message = request_message(server, slack)
    assert message.via == "chat.postMessage"
    shown = str(message.blocks)
    assert "waiting for approval" in message.text
    assert "`v1` → `v2`" in shown
    assert "needs 1 approval from @approvers" in shown
    assert "*Expires:* in 10 min" in shown
    buttons = [element["text"]["text"] for block in message.blocks or [] if block["type"] == "actions" for element in block["elements"]]
    assert buttons == ["Approve", "Reject", "Cancel"]
    assert STATE.runs == 0


def test_the_requester_cannot_approve_their_own_request(server: RunningServer, slack: FakeSlackApi) -> None:
    requester = server.slack_user(slack, REQUESTER)
    requester.command("touch svc v2 in production")
    message = request_message(server, slack)

    response = requester.click(message, ButtonAction.APPROVE)

    assert response.status_code == 200
    assert "you cannot approve it" in ephemeral_to(slack, REQUESTER, "cannot approve")
    server.wait_idle()
    assert "waiting for approval" in latest_message(slack, containing="touch svc").text
    assert STATE.runs == 0


def test_an_approval_updates_the_message_in_place_through_the_steps_to_success(
    server_on_each_database: RunningServer, slack: FakeSlackApi
) -> None:
    server = server_on_each_database
    server.slack_user(slack, REQUESTER).command("touch svc v2 in production")
    message = request_message(server, slack)

    server.slack_user(slack, APPROVER).click(message, ButtonAction.APPROVE)

    wait_for_state(slack, "succeeded")
    final = latest_message(slack, containing="touch svc")
    assert final.ts == message.ts and final.edited_count >= 2
    states = [call.params.get("text", "") for call in slack.calls_to("chat.update") if call.params.get("ts") == message.ts]
    assert any("running" in text for text in states) and states[-1].endswith("succeeded")
    assert not any(block["type"] == "actions" for block in final.blocks or []), "no buttons once it is done"
    assert (STATE.runs, STATE.value) == (1, "v2")


def test_two_approvers_clicking_at_once_run_it_exactly_once(server: RunningServer, slack: FakeSlackApi) -> None:
    server.slack_user(slack, REQUESTER).command("touch svc v2 in production")
    message = request_message(server, slack)
    clickers = [server.slack_user(slack, user) for user in (APPROVER, SECOND_APPROVER, APPROVER)]
    bodies = [clicker.click_body(message, ButtonAction.APPROVE) for clicker in clickers]
    statuses: list[int] = []
    threads = [threading.Thread(target=lambda body=body: statuses.append(server.post_signed(body).status_code)) for body in bodies]

    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses == [200, 200, 200]
    wait_for_state(slack, "succeeded")
    server.wait_idle()
    assert STATE.runs == 1
    refusals = [e.text for e in slack.ephemerals() if "changed nothing" in e.text or "a moment ago" in e.text or "already" in e.text]
    assert len(refusals) == 2


def test_a_rejected_request_runs_nothing(server: RunningServer, slack: FakeSlackApi) -> None:
    server.slack_user(slack, REQUESTER).command("touch svc v2 in production")
    message = request_message(server, slack)

    server.slack_user(slack, APPROVER).click(message, ButtonAction.REJECT)

    wait_for_state(slack, "rejected")
    server.wait_idle()
    assert STATE.runs == 0
    assert not any(block["type"] == "actions" for block in latest_message(slack, containing="touch svc").blocks or [])


def test_a_member_of_a_slack_user_group_can_approve(server: RunningServer, slack: FakeSlackApi) -> None:
    server.slack_user(slack, REQUESTER).command("touch svc v2 in production")
    message = request_message(server, slack)

    server.slack_user(slack, GROUP_MEMBER).click(message, ButtonAction.APPROVE)

    wait_for_state(slack, "succeeded")
    assert slack.calls_to("usergroups.users.list")


def test_someone_outside_the_approver_groups_is_told_so(server: RunningServer, slack: FakeSlackApi) -> None:
    server.slack_user(slack, REQUESTER).command("touch svc v2 in production")
    message = request_message(server, slack)

    server.slack_user(slack, OUTSIDER).click(message, ButtonAction.APPROVE)

    assert "you are not a member" in ephemeral_to(slack, OUTSIDER, "not a member")
    server.wait_idle()  # the click's work and any run it could have started are done
    assert STATE.runs == 0
    assert "waiting for approval" in latest_message(slack, containing="touch svc").text


# -- long output and Slack misbehaving ---------------------------------------------------------


def test_read_only_output_is_a_private_reply_split_in_parts_when_long(server: RunningServer, slack: FakeSlackApi) -> None:
    user = server.slack_user(slack, REQUESTER)

    user.command("report svc 10 in production")
    user.command("report svc 200 in production")
    server.wait_idle()

    replies = [str(e.blocks) for e in slack.ephemerals(user=REQUESTER)]
    assert any("line 0009" in reply for reply in replies)
    assert any("line 0000" in reply for reply in replies) and any("line 0199" in reply for reply in replies)
    assert slack.messages(CHANNEL) == [] and not slack.uploads, "a question is answered privately, not in the channel"


def test_a_429_on_chat_update_is_retried_after_retry_after_and_the_message_ends_right(server: RunningServer, slack: FakeSlackApi) -> None:
    server.slack_user(slack, REQUESTER).command("touch svc v2 in production")
    message = request_message(server, slack)
    slack.rate_limit("chat.update", times=1, retry_after=1)

    server.slack_user(slack, APPROVER).click(message, ButtonAction.APPROVE)

    wait_for_state(slack, "succeeded")
    limited, retried = slack.calls_to("chat.update")[:2]
    assert (limited.status, retried.status) == (429, 200)
    assert retried.at - limited.at >= 1.0
    assert latest_message(slack, containing="touch svc").ts == message.ts
    assert 'opsbot_slack_ratelimited_total{method="chat.update"}' in metrics_text(server)


def test_ok_false_from_chat_post_message_crashes_nothing(server: RunningServer, slack: FakeSlackApi) -> None:
    slack.fail_next("chat.postMessage", "channel_not_found")
    user = server.slack_user(slack, REQUESTER)

    assert user.command("touch svc v2 in production").status_code == 200
    slack.wait_for(lambda: any(call.error == "channel_not_found" for call in slack.calls_to("chat.postMessage")))
    server.wait_idle()

    assert "nobody could approve it; it is cancelled and nothing ran" in ephemeral_to(slack, REQUESTER, "could not post")
    assert "cancelled" in audit_events(server)

    assert user.command("touch svc v3 in production").status_code == 200
    assert "waiting for approval" in slack.wait_for(lambda: latest_message(slack, containing="touch svc v3")).text
    assert server.http.get("/readyz").status_code == 200
    assert 'opsbot_slack_api_errors_total{error="channel_not_found",method="chat.postMessage"}' in metrics_text(server)


def test_the_ack_is_sent_before_a_slow_chat_post_message_finishes(server: RunningServer, slack: FakeSlackApi) -> None:
    slack.delay("chat.postMessage", 3)

    response = server.slack_user(slack, REQUESTER).command("touch svc v2 in production")
    acked_at = time.monotonic()
    posts_at_ack = slack.calls_to("chat.postMessage")

    assert response.status_code == 200
    assert all(call.status is None for call in posts_at_ack), "no chat.postMessage had been answered when the ack arrived"
    slack.wait_for(lambda: latest_message(slack, containing="touch svc"), timeout=15)
    [post] = slack.calls_to("chat.postMessage")
    assert acked_at < post.at + 3, "the ack arrived before Slack answered the post"
    slack.delay("chat.postMessage", 0)


# -- malformed interactions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("actions", "answer"),
    [
        pytest.param([], "could not read that click", id="no-actions"),
        pytest.param([{"type": "button", "action_id": "someone_elses_button", "value": "1"}], "does not belong to opsbot", id="foreign"),
        pytest.param([{"type": "button", "action_id": "opsbot_approve", "value": "9" * 3_000}], "not one opsbot draws", id="huge-value"),
    ],
)
def test_a_click_opsbot_cannot_use_gets_a_clear_private_answer(
    server: RunningServer, slack: FakeSlackApi, actions: list[object], answer: str
) -> None:
    body = form_payload(block_actions_payload(APPROVER, CHANNEL, actions=actions, response_url=slack.response_url(CHANNEL, APPROVER)))

    response = server.post_signed(body)

    assert response.status_code == 200
    ephemeral_to(slack, APPROVER, answer)
    assert STATE.runs == 0


def test_a_slash_command_without_a_user_is_answered_in_the_ack(server: RunningServer, slack: FakeSlackApi) -> None:
    body = urlencode({"command": "/ops", "text": "help", "channel_id": CHANNEL, "team_id": "T0FAKE"}).encode()

    response = server.post_signed(body)

    assert response.status_code == 200
    assert "without a user or channel" in response.json()["text"]


def test_an_oversized_body_is_refused_before_bolt_reads_it(server: RunningServer) -> None:
    body = b"payload=" + b"x" * 1_100_000

    assert server.post_signed(body).status_code == 413


# -- probes and metrics ------------------------------------------------------------------------------


def test_health_readiness_and_metrics(server: RunningServer, slack: FakeSlackApi) -> None:
    server.slack_user(slack, REQUESTER).command("help")
    ephemeral_to(slack, REQUESTER, "touch")

    assert server.http.get("/healthz").text == "ok"
    assert server.http.get("/readyz").json() == {"status": "ready"}
    text = metrics_text(server)
    for series in (
        "opsbot_commands_total",
        "opsbot_approvals_total",
        "opsbot_run_duration_seconds",
        "opsbot_ack_seconds",
        "opsbot_slack_api_errors_total",
        "opsbot_slack_ratelimited_total",
        "opsbot_scheduler_job_runs_total",
    ):
        assert f"# TYPE {series} " in text, series
    assert 'opsbot_commands_total{command="help",outcome="accepted"}' in text
    assert "opsbot_ack_seconds_count" in text


def test_readiness_fails_when_the_sqlite_file_is_gone(server: RunningServer, sqlite_url: str) -> None:
    assert server.http.get("/readyz").status_code == 200

    Path(sqlite_url.removeprefix("sqlite:///")).unlink()

    response = server.http.get("/readyz")
    assert response.status_code == 503
    assert "is missing" in response.json()["problems"]["database"]
    assert server.http.get("/healthz").status_code == 200, "liveness does not depend on the database"


def test_readiness_fails_when_the_postgresql_schema_is_dropped(slack: FakeSlackApi, tmp_path: Path, postgres_url: str) -> None:
    schema = postgres_url.rsplit("search_path%3D", 1)[1]
    with serve_touch_catalog(slack, tmp_path, postgres_url) as server:
        assert server.http.get("/readyz").status_code == 200
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA "{schema}" CASCADE')
            connection.execute(f'CREATE SCHEMA "{schema}"')  # empty again, for the fixture's own cleanup

        response = server.http.get("/readyz")

        assert response.status_code == 503
        assert "run `opsbot db upgrade`" in response.json()["problems"]["migrations"]


def test_readiness_names_a_bot_token_slack_refused(tmp_path: Path, sqlite_url: str) -> None:
    with fake_slack() as slack, serve_touch_catalog(slack, tmp_path, sqlite_url, SLACK_BOT_TOKEN="xoxb-revoked") as server:
        response = server.http.get("/readyz")

    assert response.status_code == 503
    assert response.json()["problems"] == {"slack_token": "auth.test failed at startup: invalid_auth"}
