"""Outcomes named truly (issue 14 items 7–9), through signed HTTP to a live server, audit log checked.

A Stop is ``cancelled (by whom)``, a run refused at its start is ``not started`` (with why), and
only failures that touched a service reach the incident channel.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.messages import ButtonAction
from bot.store import audit as audit_store
from bot.store import requests as request_store
from bot.store.models import AuditEventRow
from fakes.slack import FakeSlackApi, Message
from tests.conftest import REPO
from tests.doubles import STATE
from tests.integration.slack_support import RunningServer, latest_message, posted_request, serve_touch_catalog

REQUESTER, APPROVER = "U0REQ", "U0A00"
INCIDENT = "C0INCIDENT"


@pytest.fixture
def server(slack: FakeSlackApi, tmp_path: Path, sqlite_url: str) -> Iterator[RunningServer]:
    with serve_touch_catalog(slack, tmp_path, sqlite_url) as running:
        yield running
        STATE.release.set()
        running.wait_idle()


def audit_rows(server: RunningServer) -> list[AuditEventRow]:
    with server.opsbot.database.reading() as session:
        return audit_store.tail(session, limit=1_000)


def ended(slack: FakeSlackApi, words: str) -> Message:
    def found() -> Message | None:
        message = latest_message(slack, containing="touch svc")
        return message if message.text.endswith(words) else None

    return slack.wait_for(found, 10, what=f"the request to end {words!r}")


def ephemeral_to(slack: FakeSlackApi, user: str, containing: str) -> str:
    found = slack.wait_for(
        lambda: [e.text for e in slack.ephemerals(user=user) if containing in e.text], what=f"an ephemeral to {user} with {containing!r}"
    )
    return found[-1]


def test_stop_ends_cancelled_by_whom_and_is_not_announced(server: RunningServer, slack: FakeSlackApi) -> None:
    STATE.release.clear()
    server.slack_user(slack, REQUESTER).command("touch svc v2 in production")
    server.slack_user(slack, APPROVER).click(posted_request(server.opsbot, slack, "touch svc"), ButtonAction.APPROVE)
    assert STATE.started.wait(10)

    def running_message() -> Message | None:
        message = latest_message(slack, containing="touch svc")
        return message if "running" in message.text else None

    running = slack.wait_for(running_message, what="the request to be running")

    server.slack_user(slack, REQUESTER).click(running, ButtonAction.CANCEL)

    final = ended(slack, "cancelled")
    assert "failed" not in final.text
    assert "cancelled by requester" in str(final.blocks)
    server.wait_idle()
    assert slack.messages(INCIDENT) == []
    events = [(row.event, row.outcome) for row in audit_rows(server)]
    assert ("cancel_requested", "cancel_requested") in events and ("cancelled", "cancelled") in events
    assert not any(event == "failed" for event, _ in events)


def test_a_stale_plan_ends_not_started_and_is_not_announced(server: RunningServer, slack: FakeSlackApi) -> None:
    server.slack_user(slack, REQUESTER).command("touch svc v2 in production")
    message = posted_request(server.opsbot, slack, "touch svc")
    STATE.value = "v9"  # someone changed the target after the plan was shown

    server.slack_user(slack, APPROVER).click(message, ButtonAction.APPROVE)

    final = ended(slack, "not started")
    assert "the target changed since the plan was approved" in str(final.blocks)
    server.wait_idle()
    assert STATE.runs == 0
    assert slack.messages(INCIDENT) == []
    assert [row.outcome for row in audit_rows(server) if row.event in ("failed", "not_started")] == ["not_started"]


def test_a_target_locked_after_the_request_is_not_started_and_the_approver_hears_why_at_the_click(
    server: RunningServer, slack: FakeSlackApi
) -> None:
    server.slack_user(slack, REQUESTER).command("touch svc v2 in production")
    message = posted_request(server.opsbot, slack, "touch svc")
    server.slack_user(slack, APPROVER).command("lock svc in production --reason migration")
    slack.wait_for(lambda: [m for m in slack.messages("C0OPS") if "is locked by" in m.text], what="the lock notice")

    server.slack_user(slack, APPROVER).click(message, ButtonAction.APPROVE)

    said = ephemeral_to(slack, APPROVER, "did not start")
    assert "locked by approver0" in said
    final = ended(slack, "not started")
    assert "approved, about to start" not in final.text
    server.wait_idle()
    assert STATE.runs == 0
    assert slack.messages(INCIDENT) == []
    refused = [row for row in audit_rows(server) if row.event == "not_started"]
    assert len(refused) == 1 and "locked by approver0" in refused[0].details


def test_a_failure_that_touched_the_service_is_still_announced(server: RunningServer, slack: FakeSlackApi) -> None:
    STATE.fail_with = "the value store refused"
    server.slack_user(slack, REQUESTER).command("touch svc v2 in production")

    server.slack_user(slack, APPROVER).click(posted_request(server.opsbot, slack, "touch svc"), ButtonAction.APPROVE)

    ended(slack, "failed")
    [announcement] = slack.wait_for(lambda: slack.messages(INCIDENT), what="the incident announcement")
    assert "the value store refused" in announcement.text


# -- item 8: nothing to do is not a change ---------------------------------------------------------


def test_asking_for_the_value_the_target_already_has_is_answered_without_an_approval_round(
    server: RunningServer, slack: FakeSlackApi
) -> None:
    server.slack_user(slack, REQUESTER).command("touch svc v1 in production")

    said = ephemeral_to(slack, REQUESTER, "nothing to do")
    assert said == "svc/production already has value v1; nothing to do."
    server.wait_idle()
    assert requests_made(server) == 0
    assert not [m for m in slack.messages("C0OPS") if "touch svc" in m.text], "no request card, no approval round"
    assert [(row.event, row.outcome) for row in audit_rows(server)] == [
        ("command_received", "received"),
        ("nothing_to_do", "nothing_to_do"),
    ]


# -- item 9: read-only answers are answers ---------------------------------------------------------


def test_a_read_only_runbook_is_answered_privately_without_a_request_card(server: RunningServer, slack: FakeSlackApi) -> None:
    server.slack_user(slack, REQUESTER).command("report svc 3 in production")

    said = slack.wait_for(lambda: [e for e in slack.ephemerals(user=REQUESTER) if "line 0002" in str(e.blocks)], what="the report")
    assert said[-1].text.startswith("report svc in production: done")
    server.wait_idle()
    assert requests_made(server) == 0
    assert slack.messages("C0OPS") == [], "no request card, no Stop button"
    assert [(row.event, row.outcome, row.request_id) for row in audit_rows(server)] == [
        ("command_received", "received", None),
        ("answered", "ok", None),
    ]
    server.slack_user(slack, REQUESTER).command("touch svc v2 in production")
    assert posted_request(server.opsbot, slack, "touch svc").text.startswith("#1 "), "the read did not spend a request number"


def requests_made(server: RunningServer) -> int:
    with server.opsbot.database.reading() as session:
        return len(request_store.list_requests(session, limit=50))


SHELL_SCRIPT = """\
/ops status checkout in production
/ops deploy checkout 1.4.1 to production
/ops scale checkout 3 in production
/ops history
"""


def test_in_the_shell_status_is_a_private_answer_and_a_no_op_deploy_or_scale_says_nothing_to_do() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli.main", "demo", "--tick-seconds", "0.05"],
        input=SHELL_SCRIPT, capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120, check=False,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "(only you) status checkout in production" in out
    assert "image registry.example.com/shop/checkout:1.4.1" in out
    assert "(only you) checkout/production already runs 1.4.1; nothing to do." in out
    assert "(only you) checkout/production already has replicas 3; nothing to do." in out
    assert "History of all services: nothing yet." in out, "no request number was spent"
    assert "Stop" not in out
