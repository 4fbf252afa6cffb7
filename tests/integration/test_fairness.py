"""One person cannot starve everyone (issue 15, item 7): rate limits per person, fair queues, reserved room for rollbacks.

The review's case: with ``OPSBOT_MAX_BACKLOG=10``, 200 commands from one user shed 183 commands
of others, a staging rollback among them. Here one person floods ``/ops help`` while Slack is
slow (every private reply takes two seconds, so the work after the ack piles up), and another
person's rollback must still be acked and run, and a third person's ``help`` still answered.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.catalog.catalog import load_catalog
from bot.requests.builtins import BUILTIN_SPECS
from bot.serve.fair_queue import FairQueue, QueueFull
from bot.slack.rate_limits import PersonRateLimits
from bot.store.models import AuditEventRow
from fakes.slack import RESPONSE_URL_CALL, FakeSlackApi
from tests.doubles import STATE, TOUCH_RUNBOOK
from tests.integration.slack_support import RunningServer, catalog_factory, migrated, serve_opsbot, slack_settings, slack_test_registry

FLOODER, REQUESTER, BYSTANDER = "U0A00", "U0REQ", "U0A01"
FLOOD = 60
"""Enough to fill a backlog of 10 and run past a burst of 30; each is one small HTTP request."""

CONFIG = """\
users: {U0REQ: requester, U0A00: approver0, U0A01: approver1}
groups:
  requesters: [U0REQ, U0A00, U0A01]
services:
  svc:
    default_env: staging
    environments:
      staging:
        kubernetes: {context: none, namespace: ns, deployment: svc}
policy:
  rules:
    - runbooks: [rollback]
      envs: [staging]
      allow: {groups: [requesters]}
"""


@pytest.fixture
def server(slack: FakeSlackApi, tmp_path: Path, sqlite_url: str) -> Iterator[RunningServer]:
    STATE.reset()
    runbooks = tmp_path / "runbooks"
    runbooks.mkdir()
    rollback = TOUCH_RUNBOOK.replace("name: touch", "name: rollback").replace("usage: touch", "usage: rollback")
    (runbooks / "rollback.yaml").write_text(rollback.replace("touch svc v2 in production", "rollback svc v0 in staging"))
    (tmp_path / "opsbot.yaml").write_text(CONFIG)
    catalog = load_catalog(tmp_path / "opsbot.yaml", runbooks, builtins=BUILTIN_SPECS, registry=slack_test_registry())
    settings = slack_settings(
        slack, database_url=migrated(sqlite_url), config_path=tmp_path / "opsbot.yaml", runbooks_dir=runbooks,
        OPSBOT_MAX_BACKLOG="10", OPSBOT_RATE_BURST="30", OPSBOT_RATE_PER_MINUTE="30",
    )  # fmt: skip
    with serve_opsbot(settings, core_factory=catalog_factory(catalog)) as running:
        yield running
        running.wait_idle()


def test_a_flood_from_one_person_does_not_shed_anothers_rollback(server: RunningServer, slack: FakeSlackApi) -> None:
    slack.delay(RESPONSE_URL_CALL, 2.0)  # Slack answering slowly: the work after each ack takes two seconds
    flooder = server.slack_user(slack, FLOODER)
    answers = [flooder.command("help").json()["text"] for _ in range(FLOOD)]

    rollback = server.slack_user(slack, REQUESTER).command("rollback svc v0 in staging").json()["text"]
    bystander = server.slack_user(slack, BYSTANDER).command("help").json()["text"]

    assert rollback.startswith("Working on"), rollback
    assert bystander.startswith("Working on"), bystander
    slack.wait_for(lambda: STATE.value == "v0" or None, 30, what="the rollback to run")
    assert any("busy" in answer for answer in answers), "the flood filled the backlog"
    assert sum("Slow down" in answer for answer in answers) == FLOOD - 30, "past the burst, the flooder is told to slow down"
    server.wait_idle()
    with server.opsbot.database.reading() as session:
        limited = session.scalars(select(AuditEventRow).where(AuditEventRow.outcome == "rate_limited")).all()
    assert [(row.actor_id, row.event) for row in limited] == [(FLOODER, "command_rejected")], "one audit row per burst, not per command"


# -- the parts on their own ----------------------------------------------------------------------


def test_a_full_queue_makes_the_heaviest_person_give_way() -> None:
    queue: FairQueue[str] = FairQueue()
    for index in range(4):
        queue.put("flooder", f"f{index}", full=False)
    queue.put("other", "o0", full=False)

    assert queue.put("newcomer", "n0", full=True) == "f3"
    with pytest.raises(QueueFull):
        queue.put("flooder", "f4", full=True)
    assert [queue.pop() for _ in range(5)] == ["f0", "o0", "n0", "f1", "f2"], "people are served in turn"


def test_a_person_over_the_rate_hears_when_to_try_again_and_is_audited_once_a_minute() -> None:
    now = [0.0]
    limits = PersonRateLimits(per_minute=6, burst=2, clock=lambda: now[0])

    decisions = [limits.take("U1") for _ in range(4)]
    assert [decision.allowed for decision in decisions] == [True, True, False, False]
    assert decisions[2].retry_after == 10
    assert (decisions[2].audit_refused, decisions[3].audit_refused) == (1, None)
    assert limits.take("U2").allowed, "another person has their own bucket"
    now[0] = 61.0
    assert limits.take("U1").allowed
    assert limits.take("U1").allowed
    assert limits.take("U1").audit_refused == 2, "a minute later: one row counting the refusals since the last"
