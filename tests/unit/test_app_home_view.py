"""A person's App Home as data and as Block Kit: the right sections, their time zone, Slack's 100 blocks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.catalog.config import FreezeWindow
from bot.messages import ButtonAction
from bot.requests.home import MAX_APPROVALS, ActiveFreeze, HomeFacts, HomeView, build_home
from bot.requests.policy import freeze_active, freeze_ends_at, freeze_starts_at
from bot.requests.views import button_value
from bot.slack.blocks import validate
from bot.slack.home_blocks import MAX_HOME_BLOCKS, home_blocks, home_view
from bot.store.models import RequestRow, TargetLockRow

NOW = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)
NEW_YORK = ZoneInfo("America/New_York")


def request(request_id: int, *, state: str = "pending_approval", requester: str = "U0REQ", **values: Any) -> RequestRow:
    fields: dict[str, Any] = {
        "id": request_id,
        "runbook": "deploy",
        "service": "checkout",
        "env": "production",
        "target_kind": "kubernetes",
        "params": {"service": "checkout", "version": f"1.4.{request_id}", "env": "production"},
        "params_hash": f"{request_id:064d}",
        "plan": [{"field": "image", "before": "shop/checkout:1.4.1", "after": f"shop/checkout:1.4.{request_id}"}],
        "plan_hash": f"{request_id + 7:064d}",
        "state": state,
        "requester_id": requester,
        "requester_name": "requester",
        "channel": "C0OPS",
        "approvals_required": 1,
        "approver_groups": ["platform-oncall"],
        "expires_at": NOW + timedelta(minutes=30),
        "created_at": NOW - timedelta(minutes=5),
        "updated_at": NOW - timedelta(minutes=1),
    }
    fields.update(values)
    return RequestRow(**fields)


def lock(service: str) -> TargetLockRow:
    return TargetLockRow(
        service=service, env="production", kind="manual", holder_id="U0DEV", holder_name="dev", reason="db migration",
        acquired_at=NOW - timedelta(minutes=10), expires_at=NOW + timedelta(hours=1),
    )  # fmt: skip


def facts(**overrides: Any) -> HomeFacts:
    values: dict[str, Any] = {
        "user_id": "U0ONE",
        "own_open": [],
        "own_open_total": 0,
        "to_approve": [],
        "locks": [],
        "freezes": [],
        "recent": [],
    }
    values.update(overrides)
    return HomeFacts(**values)


def section(view: HomeView, title: str) -> str:
    found = [part for part in view.sections if part.title == title]
    assert found, f"no section {title!r}"
    return "\n".join(item.text for item in found[0].items) + (f"\n…and {found[0].more} more" if found[0].more else "")


def test_an_approval_waiting_for_the_person_carries_the_channels_button_values_and_its_expiry_in_their_zone() -> None:
    waiting = request(12)

    view = build_home(facts(to_approve=[waiting]), now=NOW, zone=NEW_YORK, zone_name="America/New_York")

    item = view.sections[0].items[0]
    assert view.sections[0].title == "Waiting for your approval"
    assert "#12 deploy checkout 1.4.12 in production" in item.text and "asked by <@U0REQ> in <#C0OPS>" in item.text
    assert "expires 10:30 EST" in item.text  # 15:30 UTC, read in New York
    assert "`shop/checkout:1.4.1` → `shop/checkout:1.4.12`" in item.text
    assert [(button.action, button.value) for button in item.buttons] == [
        (ButtonAction.APPROVE, button_value(waiting)),
        (ButtonAction.REJECT, button_value(waiting)),
    ]
    assert "times in your Slack time zone (America/New_York)" in view.footer


def test_own_requests_offer_cancel_while_pending_and_stop_once_running() -> None:
    view = build_home(
        facts(own_open=[request(3), request(4, state="running")], own_open_total=2), now=NOW, zone=NEW_YORK, zone_name="America/New_York"
    )

    items = view.sections[1].items
    assert [button.label for item in items for button in item.buttons] == ["Cancel", "Stop"]
    assert "asked 09:55 EST" in items[0].text


def test_every_list_is_bounded_and_says_how_many_more_there_are() -> None:
    many = [request(index) for index in range(1, 41)]

    view = build_home(facts(to_approve=many, own_open=many[:10], own_open_total=25), now=NOW, zone=ZoneInfo("UTC"), zone_name="UTC")

    assert len(view.sections[0].items) == MAX_APPROVALS and view.sections[0].more == 40 - MAX_APPROVALS
    assert view.sections[1].more == 15


def test_a_full_home_stays_within_slacks_100_blocks_and_every_block_validates() -> None:
    many = [request(index, params={"service": "checkout", "version": "x" * 2_000, "env": "production"}) for index in range(1, 60)]
    freezes = [
        ActiveFreeze(FreezeWindow(name=f"f{index}", start="fri 16:00", end="mon 08:00"), NOW + timedelta(days=1)) for index in range(9)
    ]
    view = build_home(
        facts(
            to_approve=many, own_open=many[:10], own_open_total=59, locks=[lock(f"svc{index}") for index in range(30)], freezes=freezes,
            recent=[request(index, state="succeeded") for index in range(1, 9)],
        ),
        now=NOW, zone=NEW_YORK, zone_name="America/New_York", notice="That button is stale. " * 300,
    )  # fmt: skip

    blocks = home_blocks(view)

    assert len(blocks) <= MAX_HOME_BLOCKS
    validate(blocks)
    text = str(blocks)
    assert "…and 47 more" in text  # the approvals left out, said
    assert home_view(view)["type"] == "home"


def test_an_empty_home_says_what_each_section_would_hold() -> None:
    blocks = home_blocks(build_home(facts(), now=NOW, zone=NEW_YORK, zone_name="America/New_York"))

    text = str(blocks)
    for sentence in ("Nothing waits for your approval.", "You have no open requests", "No target is locked", "Nothing yet"):
        assert sentence in text
    validate(blocks)


def test_the_home_goes_stale_when_the_first_lock_freeze_or_approval_ends() -> None:
    early = lock("svc")
    early.expires_at = NOW + timedelta(minutes=7)
    view = build_home(facts(to_approve=[request(1)], locks=[early]), now=NOW, zone=NEW_YORK, zone_name="America/New_York")

    assert view.stale_at == NOW + timedelta(minutes=7)


def test_a_freeze_shows_until_its_end_in_the_readers_zone() -> None:
    window = FreezeWindow(name="weekend", start="fri 16:00", end="mon 08:00", timezone="Europe/Berlin", envs=["production"])
    friday_evening = datetime(2026, 12, 4, 18, 0, tzinfo=UTC)
    assert freeze_active(window, friday_evening)

    ends = freeze_ends_at(window, friday_evening)
    view = build_home(facts(freezes=[ActiveFreeze(window, ends)]), now=friday_evening, zone=NEW_YORK, zone_name="America/New_York")

    assert ends == datetime(2026, 12, 7, 7, 0, tzinfo=UTC)  # mon 08:00 in Berlin
    assert "Freeze weekend* (envs production) until Mon 7 Dec 02:00 EST, changes are refused" in section(view, "Locks and freezes in force")
    assert freeze_starts_at(window, friday_evening) == datetime(2026, 12, 11, 15, 0, tzinfo=UTC)
