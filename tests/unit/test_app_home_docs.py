"""The App Home as documented: both manifests enable it, and docs/slack.md shows a home exactly as opsbot draws it."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from bot.catalog.config import FreezeWindow
from bot.requests.home import ActiveFreeze, HomeFacts, build_home
from bot.slack.blocks import validate
from bot.slack.bolt_app import GROUP_EVENTS, HOME_OPENED_EVENT
from bot.slack.home_blocks import MAX_HOME_BLOCKS, home_view
from bot.store.models import RequestRow, TargetLockRow
from tests.conftest import REPO

MANIFESTS = ("slack-app-manifest.yaml", "slack-app-manifest-socket-mode.yaml")
NOW = datetime(2026, 12, 4, 16, 5, tzinfo=UTC)


def test_both_manifests_enable_the_home_tab_and_subscribe_to_every_event_opsbot_listens_to() -> None:
    for name in MANIFESTS:
        manifest = yaml.safe_load((REPO / name).read_text())
        assert manifest["features"]["app_home"]["home_tab_enabled"] is True, name
        assert set(manifest["settings"]["event_subscriptions"]["bot_events"]) >= {*GROUP_EVENTS, HOME_OPENED_EVENT}, name
        assert "users:read" in manifest["oauth_config"]["scopes"]["bot"], f"{name}: the home reads each person's time zone"


def test_every_scope_in_the_manifests_says_why_it_is_there() -> None:
    for name in MANIFESTS:
        scopes = yaml.safe_load((REPO / name).read_text())["oauth_config"]["scopes"]["bot"]
        text = (REPO / name).read_text()
        for scope in scopes:
            assert re.search(rf"^\s+- {re.escape(scope)}\s+# \S", text, re.MULTILINE), f"{name}: {scope} has no reason"


def test_the_docs_show_a_home_exactly_as_opsbot_draws_it() -> None:
    docs = (REPO / "docs" / "slack.md").read_text()
    section = docs.split("## App Home", 1)[1].split("\n## ", 1)[0]
    example = json.loads(section.split("```json", 1)[1].split("```", 1)[0])

    assert example == example_home(), "regenerate the example: print(json.dumps(example_home(), indent=2, ensure_ascii=False))"
    assert len(example["blocks"]) <= MAX_HOME_BLOCKS
    validate(example["blocks"])


def example_home() -> dict[str, Any]:
    """Dana (on call, in Berlin) opens the home on a Friday evening: a deploy waits for her, her restart runs, staging is locked."""
    waiting = _request(
        42, "deploy", "U0ALEX", "pending_approval", {"service": "checkout", "version": "1.4.2", "env": "production"},
        plan=[{"field": "image", "before": "shop/checkout:1.4.1", "after": "shop/checkout:1.4.2"}],
    )  # fmt: skip
    running = _request(41, "restart", "U0DANA", "running", {"service": "payments", "env": "production"}, plan=[])
    done = _request(39, "scale", "U0DANA", "succeeded", {"service": "search", "replicas": 6, "env": "production"}, plan=[])
    lock = TargetLockRow(
        service="checkout", env="staging", kind="manual", holder_id="U0ALEX", holder_name="alex", reason="load test",
        acquired_at=NOW - timedelta(minutes=20), expires_at=NOW + timedelta(hours=2),
    )  # fmt: skip
    freeze = FreezeWindow(
        name="weekend", start="fri 16:00", end="mon 08:00", timezone="Europe/Berlin", envs=["production"], action="require_approval",
    )  # fmt: skip
    facts = HomeFacts(
        user_id="U0DANA", own_open=[running], own_open_total=1, to_approve=[waiting], locks=[lock],
        freezes=[ActiveFreeze(freeze, datetime(2026, 12, 7, 7, 0, tzinfo=UTC))], recent=[done],
    )  # fmt: skip
    return home_view(build_home(facts, now=NOW, zone=ZoneInfo("Europe/Berlin"), zone_name="Europe/Berlin"))


def _request(request_id: int, runbook: str, requester: str, state: str, params: dict[str, Any], *, plan: list[Any]) -> RequestRow:
    return RequestRow(
        id=request_id, runbook=runbook, service=params["service"], env=params["env"], target_kind="kubernetes", params=params,
        params_hash=f"{request_id:x}" * 16, plan=plan, plan_hash=f"{request_id + 1:x}" * 16, state=state, requester_id=requester,
        requester_name=requester, channel="C0DEPLOYS", approvals_required=1, approver_groups=["platform-oncall"],
        expires_at=NOW + timedelta(minutes=25) if state == "pending_approval" else None,
        created_at=NOW - timedelta(minutes=5), updated_at=NOW - timedelta(minutes=2),
        finished_at=NOW - timedelta(hours=3) if state == "succeeded" else None,
    )  # fmt: skip
