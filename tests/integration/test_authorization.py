"""Who may do what, checked where it acts: through the real front end (signed HTTP), audit log checked.

Each test reproduces one finding of the security review (issue 15) against a live server with
the fake Slack Web API, and reads back what the person saw and what the audit log says.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from slack_sdk import WebClient

from bot.messages import ButtonAction
from bot.slack.usergroups import GroupLookupFailed, SlackUserGroups
from bot.store import audit as audit_store
from bot.store import group_members as group_store
from bot.store import incidents as incident_store
from bot.store import slots as slot_store
from bot.store.database import Database
from bot.store.models import AuditEventRow
from fakes.slack import FakeSlackApi, Message
from fakes.slack.records import UserGroup
from tests.doubles import STATE, FakeClock
from tests.integration.slack_support import (
    CHANNEL,
    SLACK_TEST_CONFIG,
    TEAM_ID,
    RunningServer,
    block_actions_payload,
    click_payload,
    form_payload,
    latest_message,
    migrated,
    posted_request,
    serve_touch_catalog,
    signed_headers,
    wait_until,
)

REQUESTER, APPROVER, OUTSIDER = "U0REQ", "U0A00", "U0OUT"


@pytest.fixture
def server(slack: FakeSlackApi, tmp_path: Path, sqlite_url: str) -> Iterator[RunningServer]:
    with serve_touch_catalog(slack, tmp_path, sqlite_url) as running:
        yield running
        running.wait_idle()


def audit_rows(server: RunningServer) -> list[AuditEventRow]:
    with server.opsbot.database.reading() as session:
        return audit_store.tail(session, limit=1_000)


def audit_events(server: RunningServer) -> list[str]:
    return [row.event for row in audit_rows(server)]


def ephemeral_to(slack: FakeSlackApi, user: str, containing: str) -> str:
    found = slack.wait_for(
        lambda: [e.text for e in slack.ephemerals(user=user) if containing in e.text], what=f"an ephemeral to {user} with {containing!r}"
    )
    return found[-1]


def request_message(server: RunningServer, slack: FakeSlackApi) -> Message:
    return posted_request(server.opsbot, slack, "touch svc")


# -- item 11: a replayed usage error ------------------------------------------------------------


def test_a_replayed_usage_error_is_audited_once(server: RunningServer, slack: FakeSlackApi) -> None:
    body = server.slack_user(slack, REQUESTER).command_body("touch nonsense")
    timestamp = int(time.time())

    for _ in range(5):
        assert server.post_signed(body, timestamp=timestamp).status_code == 200
    server.wait_idle()

    events = audit_events(server)
    assert events.count("command_rejected") == 1
    assert events.count("replay_rejected") == 4


# -- item 10: approvals bound to the request's message -------------------------------------------


def test_an_approval_clicked_from_another_channel_is_refused_and_audited(server: RunningServer, slack: FakeSlackApi) -> None:
    server.slack_user(slack, REQUESTER).command("touch svc v2 in production")
    message = request_message(server, slack)
    payload = click_payload(slack, APPROVER, "C0INCIDENT", message, ButtonAction.APPROVE)

    assert server.post_signed(form_payload(payload)).status_code == 200

    assert "not where #" in ephemeral_to(slack, APPROVER, "not where")
    server.wait_idle()
    assert STATE.runs == 0
    assert "waiting for approval" in latest_message(slack, containing="touch svc").text
    refused = [row for row in audit_rows(server) if row.event == "approval_refused"]
    assert [row.outcome for row in refused] == ["wrong_message"]


def test_an_approval_from_a_different_message_in_the_same_channel_is_refused(server: RunningServer, slack: FakeSlackApi) -> None:
    server.slack_user(slack, REQUESTER).command("touch svc v2 in production")
    message = request_message(server, slack)
    payload = click_payload(slack, APPROVER, CHANNEL, message, ButtonAction.APPROVE)
    payload["container"]["message_ts"] = "1700000999.000100"
    payload["message"]["ts"] = "1700000999.000100"

    server.post_signed(form_payload(payload))

    assert "not where #" in ephemeral_to(slack, APPROVER, "not where")
    server.wait_idle()
    assert STATE.runs == 0
    assert [row.outcome for row in audit_rows(server) if row.event == "approval_refused"] == ["wrong_message"]


# -- item 4: the policy asked again at approval and at the run's start ------------------------------

FREEZE_CONFIG = """\
users: {U0REQ: requester, U0A00: approver0, U0A01: approver1, U0OUT: outsider, U0GRP: grouped}
groups:
  approvers: [U0A00, U0A01]
  requesters: [U0REQ, U0A00, U0A01]
channels: {incident: C0INCIDENT}
services:
  svc:
    default_env: production
    environments:
      production: {kubernetes: {context: none, namespace: ns, deployment: svc}}
      staging: {kubernetes: {context: none, namespace: ns, deployment: svc}}
  svc2:
    default_env: staging
    environments:
      staging: {kubernetes: {context: none, namespace: ns, deployment: svc2}}
policy:
  rules:
    - runbooks: [touch, report, lock, unlock]
      envs: [production]
      allow: {groups: [requesters]}
      approvals: {count: 1, approvers: [approvers], expires_in: 2h}
    - runbooks: [touch]
      envs: [staging]
      allow: {groups: [requesters]}
  freezes:
    - {name: release-freeze, start: "wed 13:00", end: "wed 14:00", action: deny, reason: "Release day."}
"""


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()  # Wednesday 12:00 UTC: the freeze begins in an hour


@pytest.fixture
def frozen_server(slack: FakeSlackApi, tmp_path: Path, sqlite_url: str, clock: FakeClock) -> Iterator[RunningServer]:
    with serve_touch_catalog(slack, tmp_path, sqlite_url, config=FREEZE_CONFIG, clock=clock, OPSBOT_RUNNER_THREADS="1") as running:
        yield running
        STATE.release.set()
        running.wait_idle()


def test_a_request_made_before_a_freeze_cannot_be_approved_during_it(
    frozen_server: RunningServer, slack: FakeSlackApi, clock: FakeClock
) -> None:
    server = frozen_server
    server.slack_user(slack, REQUESTER).command("touch svc v2 in production")
    message = request_message(server, slack)
    clock.advance(timedelta(minutes=90))  # 13:30, inside the freeze

    server.slack_user(slack, APPROVER).click(message, ButtonAction.APPROVE)

    said = ephemeral_to(slack, APPROVER, "cannot be approved now")
    assert "frozen now" in said and "Release day." in said
    server.wait_idle()
    assert STATE.runs == 0
    assert "waiting for approval" in latest_message(slack, containing="touch svc").text
    refused = [row for row in audit_rows(server) if row.event == "approval_refused"]
    assert [row.outcome for row in refused] == ["policy_changed"] and "frozen now" in refused[0].details
    assert "approved" not in audit_events(server)


def test_an_approved_request_waiting_for_a_runner_does_not_start_in_a_freeze_that_began_meanwhile(
    frozen_server: RunningServer, slack: FakeSlackApi, clock: FakeClock
) -> None:
    server = frozen_server
    STATE.release.clear()  # the one runner thread is busy with svc/staging …
    server.slack_user(slack, REQUESTER).command("touch svc v2 in staging")
    assert STATE.started.wait(10)
    server.slack_user(slack, REQUESTER).command("touch svc2 v3 in staging")  # … so this one waits, approved
    slack.wait_for(lambda: [m for m in slack.messages(CHANNEL) if "touch svc2" in m.text], what="the second request's message")
    clock.advance(timedelta(minutes=90))

    STATE.release.set()

    def second_ended() -> Message | None:
        message = latest_message(slack, containing="touch svc2")
        return message if message.text.endswith("not started") else None

    final = slack.wait_for(second_ended, 10, what="the second request to end not started")
    assert "the policy no longer allows it" in str(final.blocks) and "frozen now" in str(final.blocks)
    server.wait_idle()
    assert STATE.runs == 1
    refused = [row for row in audit_rows(server) if row.event == "not_started"]
    assert len(refused) == 1 and "frozen now" in refused[0].details
    assert slack.messages("C0INCIDENT") == []


# -- item 6: people of other organisations; who may acknowledge an incident ---------------------------


def test_a_slack_connect_user_from_another_organisation_is_refused_clearly_and_audited(server: RunningServer, slack: FakeSlackApi) -> None:
    server.slack_user(slack, REQUESTER).command("touch svc v2 in production")
    message = request_message(server, slack)
    payload = click_payload(slack, APPROVER, CHANNEL, message, ButtonAction.APPROVE)
    payload["user"]["team_id"] = "T0PARTNER"  # same channel, same team.id: a guest from a partner's org

    assert server.post_signed(form_payload(payload)).status_code == 200

    said = ephemeral_to(slack, APPROVER, "another organisation")
    assert "T0PARTNER" in said and "nothing was done" in said
    server.wait_idle()
    assert STATE.runs == 0
    assert "waiting for approval" in latest_message(slack, containing="touch svc").text
    refused = [row for row in audit_rows(server) if row.event == "command_rejected"]
    assert [(row.actor_id, row.outcome) for row in refused] == [(APPROVER, "foreign_user")]


def test_an_allow_listed_partner_workspace_may_act(slack: FakeSlackApi, tmp_path: Path, sqlite_url: str) -> None:
    with serve_touch_catalog(slack, tmp_path, sqlite_url, OPSBOT_ALLOWED_TEAMS="T0PARTNER") as server:
        server.slack_user(slack, REQUESTER).command("touch svc v2 in production")
        payload = click_payload(slack, APPROVER, CHANNEL, request_message(server, slack), ButtonAction.APPROVE)
        payload["user"]["team_id"] = "T0PARTNER"

        server.post_signed(form_payload(payload))

        slack.wait_for(lambda: "succeeded" in latest_message(slack, containing="touch svc").text or None, what="the run")
        server.wait_idle()


OWNED_CONFIG = SLACK_TEST_CONFIG.replace(
    "  svc:\n    default_env: production\n", "  svc:\n    owners: [U0A01]\n    default_env: production\n"
)


def open_incident(server: RunningServer) -> int:
    with server.opsbot.database.transaction() as session:
        row = incident_store.insert(
            session, service="svc", env="production", state="open", reasons=["0/3 ready"], now=datetime.now(UTC), opened=True
        )
        assert row is not None
        return row.id


def test_only_owners_on_call_or_a_policy_rule_may_acknowledge_an_incident(slack: FakeSlackApi, tmp_path: Path, sqlite_url: str) -> None:
    with serve_touch_catalog(slack, tmp_path, sqlite_url, config=OWNED_CONFIG) as server:
        incident = open_incident(server)
        ack = {"action_id": str(ButtonAction.INCIDENT_ACK), "value": str(incident), "block_id": "b", "type": "button"}

        server.post_signed(form_payload(block_actions_payload(OUTSIDER, "C0INCIDENT", actions=[ack])))
        said = ephemeral_to(slack, OUTSIDER, "may acknowledge")
        server.post_signed(form_payload(block_actions_payload("U0A01", "C0INCIDENT", actions=[ack])))
        server.wait_idle()

        assert "Only the people who answer for svc (<@U0A01>)" in said
        rows = audit_rows(server)
        assert [(row.event, row.actor_id) for row in rows if row.event in ("denied", "incident_acknowledged")] == [
            ("denied", OUTSIDER),
            ("incident_acknowledged", "U0A01"),
        ]


# -- item 12: releasing another person's lock ----------------------------------------------------------

LOCKS_CONFIG = SLACK_TEST_CONFIG.replace("  svc:\n", "  svc:\n    channel: C0INCIDENT\n", 1).replace(
    "  rules:\n", "  rules:\n    - {runbooks: [unlock-others], envs: [production], allow: {users: [U0A01]}}\n", 1
)


def test_releasing_another_persons_lock_names_them_tells_the_service_channel_and_may_require_a_rule(
    slack: FakeSlackApi, tmp_path: Path, sqlite_url: str
) -> None:
    with serve_touch_catalog(slack, tmp_path, sqlite_url, config=LOCKS_CONFIG) as server:
        server.slack_user(slack, APPROVER).command("lock svc in production --reason migration")
        slack.wait_for(lambda: [m for m in slack.messages(CHANNEL) if "is locked by" in m.text], what="the lock notice")

        server.slack_user(slack, REQUESTER).command("unlock svc in production")
        refused = ephemeral_to(slack, REQUESTER, "Denied")
        server.slack_user(slack, "U0A01").command("unlock svc in production")
        server.wait_idle()

        assert "Only" in refused and "unlock-others" in refused
        expected = "🔓 svc/production was unlocked by <@U0A01>; the lock was <@U0A00>'s (migration)."
        assert [m.text for m in slack.messages(CHANNEL) if "unlocked" in m.text] == [expected]
        assert [m.text for m in slack.messages("C0INCIDENT")] == [expected], "the service's own channel hears it"
        rows = [(row.event, row.actor_id, row.runbook, row.outcome) for row in audit_rows(server) if row.event in ("denied", "unlocked")]
        assert rows == [("denied", REQUESTER, "unlock-others", "denied"), ("unlocked", "U0A01", "unlock", "released_for_another")]
        assert "U0A00" in next(row.details for row in audit_rows(server) if row.event == "unlocked")


# -- item 3: /ops digest under the policy; what the policy governs for show, history, approvals --------

DIGEST_CONFIG = SLACK_TEST_CONFIG.replace(
    "channels: {incident: C0INCIDENT}\n", "channels:\n  incident: C0INCIDENT\n  digests: [{channel: C0INCIDENT}]\n", 1
).replace("  rules:\n", '  rules:\n    - {runbooks: [digest], envs: ["*"], allow: {groups: [requesters]}}\n', 1)


def digests_posted(server: RunningServer) -> list[AuditEventRow]:
    return [row for row in audit_rows(server) if row.event == "digest_posted"]


def test_digest_needs_a_policy_rule_posts_only_here_or_to_a_digest_channel_and_is_rate_limited(
    slack: FakeSlackApi, tmp_path: Path, sqlite_url: str, clock: FakeClock
) -> None:
    with serve_touch_catalog(slack, tmp_path, sqlite_url, config=DIGEST_CONFIG, clock=clock) as server:
        server.slack_user(slack, OUTSIDER, channel="C0INCIDENT").command("digest")
        nobody = ephemeral_to(slack, OUTSIDER, "Denied")
        requester = server.slack_user(slack, REQUESTER)
        requester.command("digest C0ELSEWHERE")
        elsewhere = ephemeral_to(slack, REQUESTER, "posts only to this channel")
        requester.command("digest")
        slack.wait_for(lambda: slack.messages(CHANNEL), what="the digest in #ops")
        requester.command("digest")
        again = ephemeral_to(slack, REQUESTER, "less than a minute ago")
        server.wait_idle()

        assert "Only members of @requesters may run `digest`" in nobody
        assert "<#C0INCIDENT>" in elsewhere
        assert "try again in 60 s" in again
        assert slack.messages("C0INCIDENT") == [] and len(slack.messages(CHANNEL)) == 1
        denials = [(row.actor_id, row.outcome) for row in audit_rows(server) if row.event == "denied"]
        assert denials == [(OUTSIDER, "denied"), (REQUESTER, "wrong_channel"), (REQUESTER, "rate_limited")]
        assert [row.channel for row in digests_posted(server)] == [CHANNEL]


def test_an_ad_hoc_digest_never_moves_a_configured_digests_since_window(
    slack: FakeSlackApi, tmp_path: Path, sqlite_url: str, clock: FakeClock
) -> None:
    with serve_touch_catalog(slack, tmp_path, sqlite_url, config=DIGEST_CONFIG, clock=clock) as server:
        server.slack_user(slack, REQUESTER).command("digest C0INCIDENT")
        slack.wait_for(lambda: slack.messages("C0INCIDENT"), what="the digest in the digest channel")
        server.wait_idle()

        with server.opsbot.database.reading() as session:
            assert slot_store.digest_state(session, "C0INCIDENT") is None
        assert [row.channel for row in digests_posted(server)] == ["C0INCIDENT"]


READ_CONFIG = SLACK_TEST_CONFIG.replace(
    "  rules:\n", "  rules:\n    - {runbooks: [read], envs: [production], allow: {groups: [requesters]}}\n", 1
)


def test_a_read_rule_governs_show_history_and_approvals(slack: FakeSlackApi, tmp_path: Path, sqlite_url: str) -> None:
    with serve_touch_catalog(slack, tmp_path, sqlite_url, config=READ_CONFIG) as server:
        server.slack_user(slack, REQUESTER).command("touch svc v2 in production")
        request_message(server, slack)
        outsider = server.slack_user(slack, OUTSIDER)

        outsider.command("show 1")
        denied = ephemeral_to(slack, OUTSIDER, "Denied")
        outsider.command("history")
        history = ephemeral_to(slack, OUTSIDER, "History of")
        outsider.command("approvals")
        waiting = ephemeral_to(slack, OUTSIDER, "Waiting for approval")
        server.slack_user(slack, REQUESTER).command("approvals")
        theirs = ephemeral_to(slack, REQUESTER, "Waiting for approval")
        server.wait_idle()

        assert "may run `read`" in denied
        assert history == "History of all services: nothing yet." and waiting == "Waiting for approval: nothing yet."
        assert theirs == "Waiting for approval: 1 requests"
        assert [(row.event, row.actor_id, row.runbook) for row in audit_rows(server) if row.event == "denied"] == [
            ("denied", OUTSIDER, "read")
        ]


# -- item 5: group membership for approvals -------------------------------------------------------------

GROUP_MEMBER = "U0GRP"


def group_event(server: RunningServer, event_type: str, group_id: str) -> httpx.Response:
    """A signed Events API delivery about a user group, as Slack sends it (JSON)."""
    event = {"type": event_type, "subteam_id": group_id, "team_id": TEAM_ID, "removed_users": [GROUP_MEMBER], "event_ts": "1.2"}
    body = json.dumps(
        {"token": "legacy", "team_id": TEAM_ID, "api_app_id": "A0FAKE", "type": "event_callback", "event_id": "Ev01", "event_time": 1,
         "event": event}
    ).encode()  # fmt: skip
    headers = {**signed_headers(server.signing_secret, body), "Content-Type": "application/json"}
    return server.http.post("/slack/events", content=body, headers=headers)


def test_a_member_removed_from_a_slack_user_group_cannot_approve_once_slack_says_so(server: RunningServer, slack: FakeSlackApi) -> None:
    server.slack_user(slack, REQUESTER).command("touch svc v2 in production")
    server.slack_user(slack, GROUP_MEMBER).click(request_message(server, slack), ButtonAction.APPROVE)
    slack.wait_for(lambda: "succeeded" in latest_message(slack, containing="touch svc v2").text or None, what="the first run")
    slack.ws.usergroups["S0ONCALL"] = UserGroup(id="S0ONCALL", handle="platform-oncall", users=())

    assert group_event(server, "subteam_members_changed", "S0ONCALL").status_code == 200
    server.wait_idle()
    server.slack_user(slack, REQUESTER).command("touch svc v3 in production")
    server.slack_user(slack, GROUP_MEMBER).click(posted_request(server.opsbot, slack, "touch svc v3"), ButtonAction.APPROVE)

    assert "you are not a member" in ephemeral_to(slack, GROUP_MEMBER, "not a member")
    server.wait_idle()
    assert STATE.value == "v2"
    assert [row.outcome for row in audit_rows(server) if row.event == "approval_refused"] == ["not_an_approver"]


class ManualClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_cached_membership_older_than_its_maximum_age_grants_nothing_while_slack_fails(slack: FakeSlackApi) -> None:
    clock = ManualClock()
    groups = SlackUserGroups(WebClient(token=slack.token, base_url=slack.api_url), ttl_seconds=300, clock=clock)
    assert groups("S0ONCALL") == {GROUP_MEMBER}
    slack.fail_next("usergroups.users.list", "ratelimited", times=2)

    clock.now += 358
    stale = groups("S0ONCALL")
    clock.now += 300
    with pytest.raises(GroupLookupFailed, match="too old"):
        groups("S0ONCALL")

    assert stale == {GROUP_MEMBER}, "within 2 × TTL a Slack hiccup does not lock the on-call out"


def test_the_membership_answer_is_shared_across_processes_through_the_database(slack: FakeSlackApi, sqlite_url: str) -> None:
    database = Database(migrated(sqlite_url))
    first, second = (SlackUserGroups(WebClient(token=slack.token, base_url=slack.api_url)) for _ in range(2))
    first.share(database)
    second.share(database)
    try:
        assert first("S0ONCALL") == {GROUP_MEMBER}
        wait_until(lambda: shared(database), what="the answer in the shared cache")
        assert second("S0ONCALL") == {GROUP_MEMBER}
        assert len(slack.calls_to("usergroups.users.list")) == 1, "one Slack call served both processes"

        slack.ws.usergroups["S0ONCALL"] = UserGroup(id="S0ONCALL", handle="platform-oncall", users=())
        first.invalidate("S0ONCALL")

        assert second("S0ONCALL") == frozenset(), "the other process no longer trusts what it saw"
    finally:
        database.dispose()


def shared(database: Database) -> bool:
    with database.reading() as session:
        return group_store.read(session, "S0ONCALL") is not None
