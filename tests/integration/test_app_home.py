"""The App Home over real HTTP: a signed ``app_home_opened`` → ``views.publish`` of that person's home,
republished when something of theirs changes, and its buttons held to the same checks as the channel's.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from bot.messages import ButtonAction
from bot.requests.home import MAX_APPROVALS
from bot.store import audit as audit_store
from bot.store import home as home_store
from bot.store import requests as request_store
from fakes.slack import FakeSlackApi
from fakes.slack.api import View
from tests.doubles import STATE
from tests.integration.slack_support import (
    BOT_TOKEN,
    CHANNELS,
    SIGNING_SECRET,
    TEAM_ID,
    USERGROUPS,
    USERS,
    RunningServer,
    assert_every_blocks_payload_valid,
    form_payload,
    latest_message,
    posted_request,
    serve_touch_catalog,
    signed_headers,
    wait_until,
)

REQUESTER, APPROVER, OUTSIDER, GROUP_MEMBER = "U0REQ", "U0A00", "U0OUT", "U0GRP"
TIME_ZONES = {APPROVER: "America/New_York", REQUESTER: "Asia/Tokyo"}
HOME_CONFIG = """\
users: {U0REQ: requester, U0A00: approver0, U0A01: approver1, U0OUT: outsider, U0GRP: grouped}
groups:
  approvers: [U0A00, U0A01, "@platform-oncall"]
  requesters: [U0REQ, U0A00, U0A01, U0OUT]
channels: {incident: C0INCIDENT}
services:
  svc:
    default_env: production
    environments:
      production:
        kubernetes: {context: none, namespace: ns, deployment: svc}
policy:
  rules:
    - runbooks: [lock, unlock]
      envs: [production]
      allow: {groups: [requesters]}
    - runbooks: [touch, report]
      envs: [production]
      allow: {groups: [requesters]}
      approvals: {count: 1, approvers: [approvers], expires_in: 10m}
"""


@pytest.fixture
def slack() -> Iterator[FakeSlackApi]:
    with FakeSlackApi(token=BOT_TOKEN, users=USERS, channels=CHANNELS, usergroups=USERGROUPS, timezones=TIME_ZONES) as fake:
        yield fake
        assert_every_blocks_payload_valid(fake)
        assert fake.server_errors == []


@pytest.fixture
def server(slack: FakeSlackApi, tmp_path: Path, sqlite_url: str) -> Iterator[RunningServer]:
    with serve_touch_catalog(slack, tmp_path, sqlite_url, config=HOME_CONFIG) as running:
        yield running
        running.wait_idle()


@pytest.fixture
def server_on_each_database(slack: FakeSlackApi, tmp_path: Path, database_url: str) -> Iterator[RunningServer]:
    with serve_touch_catalog(slack, tmp_path, database_url, config=HOME_CONFIG) as running:
        yield running
        running.wait_idle()


# -- what Slack sends ---------------------------------------------------------------------------


def open_home(server: RunningServer, user_id: str, *, tab: str = "home") -> httpx.Response:
    """The signed Events API delivery Slack sends when ``user_id`` opens the app's tab."""
    body = json.dumps(
        {
            "token": "legacy-verification-token",
            "team_id": TEAM_ID,
            "api_app_id": "A0FAKE",
            "type": "event_callback",
            "event_id": f"Ev{user_id}{time.monotonic_ns()}",
            "event_time": int(time.time()),
            "event": {"type": "app_home_opened", "user": user_id, "channel": "D" + user_id[1:], "tab": tab, "event_ts": "1700000000.0001"},
        }
    ).encode()
    headers = {**signed_headers(SIGNING_SECRET, body), "Content-Type": "application/json"}
    return server.http.post("/slack/events", content=body, headers=headers)


def home_click(server: RunningServer, slack: FakeSlackApi, user_id: str, home: View, action: ButtonAction, **overrides: Any) -> None:
    """Press ``action`` on ``home`` as ``user_id``: a block_actions payload from a view, with no channel."""
    element, block_id = home_button(home, action)
    element = {**element, **overrides}
    payload = {
        "type": "block_actions",
        "user": {"id": user_id, "username": USERS[user_id], "name": USERS[user_id], "team_id": TEAM_ID},
        "api_app_id": "A0FAKE",
        "token": "legacy-verification-token",
        "container": {"type": "view", "view_id": home.id},
        "trigger_id": slack.trigger_id(user_id),
        "team": {"id": TEAM_ID, "domain": "fake"},
        "view": home.to_slack(TEAM_ID, "B0BOT"),
        "actions": [{**element, "block_id": block_id, "action_ts": f"{time.time():.6f}"}],
    }
    response = server.post_signed(form_payload(payload))
    assert response.status_code == 200


def home_button(home: View, action: ButtonAction) -> tuple[dict[str, Any], str]:
    for block in home.blocks:
        for element in block.get("elements", []) if block.get("type") == "actions" else []:
            if str(element.get("action_id", "")).split("#", 1)[0] == action:
                return dict(element), str(block["block_id"])
    raise LookupError(f"no {action} button on the home: {home_text(home)}")


# -- what Slack shows ---------------------------------------------------------------------------


def home_text(home: View | None) -> str:
    return json.dumps(home.blocks, ensure_ascii=False) if home is not None else ""


def home_showing(slack: FakeSlackApi, user_id: str, *fragments: str, timeout: float = 15.0) -> View:
    def shown() -> View | None:
        home = slack.home(user_id)
        return home if home is not None and all(fragment in home_text(home) for fragment in fragments) else None

    return slack.wait_for(shown, timeout, what=f"{user_id}'s home to show {fragments}")


def clickable_home(server: RunningServer, slack: FakeSlackApi, user_id: str, *fragments: str) -> View:
    """The person's home, once opsbot has also stored which view it is.

    Slack shows a published home before opsbot has recorded the view id its answer named (a click
    in between is refused as coming from a view opsbot did not publish): a person cannot click
    that fast, a test can.
    """
    home = home_showing(slack, user_id, *fragments)

    def recorded() -> bool:
        with server.opsbot.database.reading() as session:
            return home_store.published_view(session, user_id) == home.id

    wait_until(recorded, 15, what=f"opsbot to record {user_id}'s home view")
    return home


def section_of(home: View, title: str) -> str:
    """The text of one section of the home, from its title to the next divider."""
    texts: list[str] = []
    inside = False
    for block in home.blocks:
        if block["type"] == "divider":
            if inside:
                break
            continue
        text = json.dumps(block, ensure_ascii=False)
        if f"*{title}*" in text:
            inside = True
        elif inside:
            texts.append(text)
    assert inside, f"no section {title!r} on the home"
    return "\n".join(texts)


def publishes_for(slack: FakeSlackApi, user_id: str) -> int:
    return len([call for call in slack.calls_to("views.publish") if call.params.get("user_id") == user_id])


def audit_events(server: RunningServer) -> list[str]:
    with server.opsbot.database.reading() as session:
        return [row.event for row in audit_store.tail(session, limit=1_000)]


def refusals(server: RunningServer) -> list[tuple[str, str]]:
    """(who, why) of every refused decision in the audit log."""
    with server.opsbot.database.reading() as session:
        return [(row.actor_id, row.outcome) for row in audit_store.tail(session, limit=1_000) if row.event == "approval_refused"]


def pending_touch(server: RunningServer, slack: FakeSlackApi) -> None:
    server.slack_user(slack, REQUESTER).command("touch svc v2 in production")
    posted_request(server.opsbot, slack, "touch svc")


# -- opening the home ---------------------------------------------------------------------------


def test_opening_the_home_publishes_the_persons_requests_approvals_locks_and_runs_in_their_time_zone(
    server_on_each_database: RunningServer, slack: FakeSlackApi
) -> None:
    server = server_on_each_database
    pending_touch(server, slack)

    assert open_home(server, APPROVER).status_code == 200

    home = home_showing(slack, APPROVER, "Waiting for your approval", "touch svc v2")
    waiting = section_of(home, "Waiting for your approval")
    assert "#1 touch svc v2 in production" in waiting and "asked by <@U0REQ>" in waiting
    assert "`v1` → `v2`" in waiting
    assert [button["text"]["text"] for button in home_button_row(home, "approve-1")] == ["Approve", "Reject"]
    expires = server_request(server, 1)["expires_at"].astimezone(ZoneInfo("America/New_York"))
    assert f"expires {expires.strftime('%H:%M')} EST" in waiting, waiting
    assert "America/New_York" in home_text(home)
    for title in ("Your open requests", "Locks and freezes in force", "Your last runs"):
        section_of(home, title)
    assert len(home.blocks) <= 100


def test_the_requester_sees_their_open_request_with_cancel_in_their_own_time_zone(server: RunningServer, slack: FakeSlackApi) -> None:
    pending_touch(server, slack)

    open_home(server, REQUESTER)

    home = home_showing(slack, REQUESTER, "Your open requests", "touch svc v2")
    assert "Nothing waits for your approval." in section_of(home, "Waiting for your approval")
    mine = section_of(home, "Your open requests")
    assert "waiting for approval" in mine and "JST" in mine
    assert [button["text"]["text"] for button in home_button_row(home, "open-1")] == ["Cancel"]


def test_the_messages_tab_publishes_nothing(server: RunningServer, slack: FakeSlackApi) -> None:
    open_home(server, APPROVER, tab="messages")
    open_home(server, REQUESTER)

    home_showing(slack, REQUESTER, "Your open requests")
    server.wait_idle()
    assert publishes_for(slack, APPROVER) == 0


# -- kept up to date ----------------------------------------------------------------------------


def test_the_home_is_republished_after_an_approval_that_concerns_the_person(
    server_on_each_database: RunningServer, slack: FakeSlackApi
) -> None:
    server = server_on_each_database
    pending_touch(server, slack)
    open_home(server, REQUESTER)
    home_showing(slack, REQUESTER, "waiting for approval")

    server.slack_user(slack, APPROVER).click(posted_request(server.opsbot, slack, "touch svc"), ButtonAction.APPROVE)

    home = home_showing(slack, REQUESTER, "succeeded")
    assert "#1 touch svc v2 in production" in section_of(home, "Your last runs")
    assert "You have no open requests" in section_of(home, "Your open requests")


def test_a_new_request_reaches_the_homes_of_approvers_who_opened_theirs_and_no_one_else(server: RunningServer, slack: FakeSlackApi) -> None:
    open_home(server, APPROVER)
    home_showing(slack, APPROVER, "Nothing waits for your approval.")

    pending_touch(server, slack)

    home_showing(slack, APPROVER, "touch svc v2", ButtonAction.APPROVE.value)
    server.wait_idle()
    assert publishes_for(slack, "U0A01") == 0, "an approver who never opened the home is not published to"


def test_a_lock_shows_on_every_open_home_and_leaves_it_when_unlocked(server: RunningServer, slack: FakeSlackApi) -> None:
    open_home(server, APPROVER)
    home_showing(slack, APPROVER, "No target is locked")

    server.slack_user(slack, REQUESTER).command('lock svc in production for 1h --reason "db migration"')

    home = home_showing(slack, APPROVER, "svc/production")
    locks = section_of(home, "Locks and freezes in force")
    assert "locked by <@U0REQ>" in locks and "db migration" in locks and "EST" in locks

    server.slack_user(slack, REQUESTER).command("unlock svc in production")
    home_showing(slack, APPROVER, "No target is locked")


def test_a_ratelimited_publish_waits_for_retry_after_and_then_publishes_once(server: RunningServer, slack: FakeSlackApi) -> None:
    slack.rate_limit("views.publish", times=1, retry_after=1)

    open_home(server, REQUESTER)

    home_showing(slack, REQUESTER, "Your open requests")
    calls = [call for call in slack.calls_to("views.publish") if call.params.get("user_id") == REQUESTER]
    assert [call.status for call in calls] == [429, 200]
    assert calls[1].at - calls[0].at >= 1.0, "the second attempt honoured Retry-After"


# -- buttons on the home ------------------------------------------------------------------------


def test_approve_from_the_home_runs_the_request_like_a_click_in_the_channel(server: RunningServer, slack: FakeSlackApi) -> None:
    pending_touch(server, slack)
    open_home(server, APPROVER)
    home = clickable_home(server, slack, APPROVER, "touch svc v2")

    home_click(server, slack, APPROVER, home, ButtonAction.APPROVE)

    slack.wait_for(lambda: "succeeded" in latest_message(slack, containing="touch svc").text or None, 15, what="the run to succeed")
    assert (STATE.runs, STATE.value) == (1, "v2")
    assert "Nothing waits for your approval." in section_of(home_showing(slack, APPROVER, "succeeded"), "Waiting for your approval")
    assert "approved" in audit_events(server)


def test_cancel_from_the_home_cancels_the_persons_own_request(server: RunningServer, slack: FakeSlackApi) -> None:
    pending_touch(server, slack)
    open_home(server, REQUESTER)
    home = clickable_home(server, slack, REQUESTER, "touch svc v2")

    home_click(server, slack, REQUESTER, home, ButtonAction.CANCEL)

    slack.wait_for(lambda: "cancelled" in latest_message(slack, containing="touch svc").text or None, 15, what="the request cancelled")
    assert "#1 touch svc v2 in production" in section_of(home_showing(slack, REQUESTER, "cancelled"), "Your last runs")


def test_approve_from_the_home_by_someone_outside_the_approver_groups_is_refused(server: RunningServer, slack: FakeSlackApi) -> None:
    pending_touch(server, slack)
    open_home(server, APPROVER)
    approvers_home = clickable_home(server, slack, APPROVER, "touch svc v2")
    open_home(server, OUTSIDER)
    outsiders_home = clickable_home(server, slack, OUTSIDER, "Nothing waits for your approval.")
    assert ButtonAction.APPROVE.value not in home_text(outsiders_home)
    copied, _ = home_button(approvers_home, ButtonAction.APPROVE)

    # The outsider's own home, with the approver's button value pasted into the payload.
    home_click(server, slack, OUTSIDER, outsiders_with_button(outsiders_home, copied), ButtonAction.APPROVE)

    home = home_showing(slack, OUTSIDER, "you are not a member")
    assert "Approvals for #1 must come from @approvers" in home_text(home)
    server.wait_idle()
    assert "waiting for approval" in latest_message(slack, containing="touch svc").text
    assert STATE.runs == 0
    assert refusals(server) == [(OUTSIDER, "not_an_approver")]


def test_a_forged_value_on_the_home_is_refused_and_nothing_is_approved(server: RunningServer, slack: FakeSlackApi) -> None:
    pending_touch(server, slack)
    open_home(server, APPROVER)
    home = clickable_home(server, slack, APPROVER, "touch svc v2")
    genuine, _ = home_button(home, ButtonAction.APPROVE)
    request_id = genuine["value"].split(":", 1)[0]

    home_click(server, slack, APPROVER, home, ButtonAction.APPROVE, value=f"{request_id}:{'0' * 16}:{'0' * 16}")

    refused = home_showing(slack, APPROVER, "changed since your App Home was drawn")
    assert ButtonAction.APPROVE.value in home_text(refused), "the request still waits for the approver"
    server.wait_idle()
    assert "waiting for approval" in latest_message(slack, containing="touch svc").text
    assert STATE.runs == 0
    assert refusals(server) == [(APPROVER, "stale")]


def test_a_home_click_from_a_view_opsbot_did_not_publish_for_the_clicker_is_refused(server: RunningServer, slack: FakeSlackApi) -> None:
    pending_touch(server, slack)
    open_home(server, APPROVER)
    open_home(server, "U0A01")
    approvers_home = clickable_home(server, slack, APPROVER, "touch svc v2")
    others_home = clickable_home(server, slack, "U0A01", "touch svc v2")

    # U0A01 may approve, but the payload names U0A00's home view.
    home_click(server, slack, "U0A01", approvers_home, ButtonAction.APPROVE)

    home_showing(slack, "U0A01", "not on the App Home opsbot drew for you")
    assert others_home.id != approvers_home.id
    server.wait_idle()
    assert STATE.runs == 0
    assert "waiting for approval" in latest_message(slack, containing="touch svc").text
    assert refusals(server) == [("U0A01", "wrong_message")]


# -- helpers that read the fake -----------------------------------------------------------------


def home_button_row(home: View, key: str) -> list[dict[str, Any]]:
    for block in home.blocks:
        if block.get("block_id") == f"item-{key}-actions":
            return list(block["elements"])
    raise LookupError(f"no buttons for {key} on the home: {home_text(home)}")


def outsiders_with_button(home: View, button: dict[str, Any]) -> View:
    """The outsider's home as if it had ``button`` on it (what a forged payload would carry)."""
    blocks = [*home.blocks, {"type": "actions", "block_id": "forged", "elements": [button]}]
    return dataclasses.replace(home, payload={**home.payload, "blocks": blocks})


def server_request(server: RunningServer, request_id: int) -> dict[str, Any]:
    with server.opsbot.database.reading() as session:
        row = request_store.get_request(session, request_id)
        assert row is not None
        return {"expires_at": row.expires_at}


def test_a_long_list_is_cut_with_and_n_more_and_slack_accepts_the_home(server: RunningServer, slack: FakeSlackApi) -> None:
    requester = server.slack_user(slack, REQUESTER)
    for index in range(MAX_APPROVALS + 2):
        requester.command(f"touch svc v{index + 2} in production")
    slack.wait_for(lambda: len(slack.messages("C0OPS")) >= MAX_APPROVALS + 2 or None, 30, what="every request posted")

    open_home(server, APPROVER)

    home = home_showing(slack, APPROVER, "…and 2 more")
    assert home_text(home).count(ButtonAction.APPROVE.value) == MAX_APPROVALS
    assert all(call.ok for call in slack.calls_to("views.publish"))
