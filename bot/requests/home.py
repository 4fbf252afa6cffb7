"""A person's App Home as plain data: what they asked for, what waits for them, what holds targets still.

Pure: the rows come in (``HomeFacts``, gathered by ``bot.requests.app_home``), a ``HomeView`` goes
out, and ``bot.slack.home_blocks`` draws it as Block Kit. Every list is bounded here (Slack allows
100 blocks in a home view) and says how many it left out, so the drawing never has to cut.
Times are shown in the reader's own time zone (their Slack profile), not the deployment's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from bot.catalog.config import FreezeWindow
from bot.messages import Button, ButtonAction, channel_link, code, escape, mention, plain_text
from bot.requests.views import STATE_ICONS, STATE_WORDS, button_value, request_title
from bot.store.models import RequestRow, TargetLockRow
from bot.store.states import RequestState
from bot.timefmt import clock_time

MAX_OPEN = 10
MAX_APPROVALS = 12
MAX_LOCKS = 10
MAX_FREEZES = 5
MAX_RECENT = 8
"""Per section; with a header, a divider and an "and N more" line each, a home stays well under 100 blocks."""
MAX_PLAN_LINES = 4
MAX_ITEM_CHARS = 1_500
"""An item is a summary (its request's message has everything): longer text is shortened, visibly."""


@dataclass(frozen=True)
class HomeItem:
    """One line of the home (mrkdwn built by opsbot) and the buttons that act on it."""

    text: str
    buttons: tuple[Button, ...] = ()
    key: str = ""
    """Stable and unique within the home (``request-12``), for the drawing's block ids."""


@dataclass(frozen=True)
class HomeSection:
    title: str
    items: tuple[HomeItem, ...]
    more: int
    """How many were left out: said as "and N more", never dropped silently."""
    empty: str
    more_hint: str = ""


@dataclass(frozen=True)
class HomeView:
    """Everything the home shows, in order, ready to draw."""

    user_id: str
    sections: tuple[HomeSection, ...]
    footer: str
    notice: str | None = None
    stale_at: datetime | None = None
    """When what it shows stops being true by itself (a lock or freeze ends, an approval expires): publish again then."""


@dataclass(frozen=True)
class ActiveFreeze:
    window: FreezeWindow
    ends_at: datetime


@dataclass(frozen=True)
class HomeFacts:
    """The rows that concern one person, as the store and the policy gave them."""

    user_id: str
    own_open: Sequence[RequestRow]
    own_open_total: int
    to_approve: Sequence[RequestRow]
    """Pending requests of others this person may approve and has not voted on yet."""
    locks: Sequence[TargetLockRow]
    freezes: Sequence[ActiveFreeze]
    recent: Sequence[RequestRow]
    next_freeze_start: datetime | None = None
    """When the next freeze window begins (the home must show it from then on)."""


def build_home(facts: HomeFacts, *, now: datetime, zone: tzinfo, zone_name: str, notice: str | None = None) -> HomeView:
    """The person's home as of ``now``, times in ``zone``."""
    sections = (
        _section(
            "Waiting for your approval",
            [_approval_item(row, now, zone) for row in facts.to_approve],
            MAX_APPROVALS,
            empty="Nothing waits for your approval.",
            more_hint="`/ops approvals` lists them all",
        ),
        _section(
            "Your open requests",
            [_open_item(row, now, zone) for row in facts.own_open],
            MAX_OPEN,
            total=facts.own_open_total,
            empty="You have no open requests. Type `/ops help` in a channel to start one.",
            more_hint="`/ops history` lists more",
        ),
        _section(
            "Locks and freezes in force",
            [
                *(_freeze_item(freeze, now, zone) for freeze in facts.freezes[:MAX_FREEZES]),
                *(_lock_item(lock, now, zone) for lock in facts.locks),
            ],
            MAX_FREEZES + MAX_LOCKS,
            hidden=max(0, len(facts.freezes) - MAX_FREEZES),
            empty="No target is locked and no freeze is in force.",
        ),
        _section(
            "Your last runs",
            [_recent_item(row, now, zone, facts.user_id) for row in facts.recent],
            MAX_RECENT,
            empty="Nothing yet: requests you ask for or decide on show up here when they end.",
            more_hint="`/ops history` shows more",
        ),
    )
    return HomeView(
        user_id=facts.user_id,
        sections=sections,
        footer=f"Updated {clock_time(now, now, zone=zone)} · times in your Slack time zone ({escape(zone_name)})",
        notice=notice,
        stale_at=_stale_at(facts, now),
    )


def _section(
    title: str, items: list[HomeItem], limit: int, *, empty: str, total: int | None = None, hidden: int = 0, more_hint: str = ""
) -> HomeSection:
    shown = items[:limit]
    count = max(len(items), total or 0) + hidden
    return HomeSection(title=title, items=tuple(shown), more=max(0, count - len(shown)), empty=empty, more_hint=more_hint)


def _approval_item(row: RequestRow, now: datetime, zone: tzinfo) -> HomeItem:
    lines = [
        f"{STATE_ICONS[RequestState.PENDING_APPROVAL]} *{request_title(row)}*",
        f"asked by {mention(row.requester_id)} in {channel_link(row.channel)}" + _expiry(row, now, zone),
        *_plan_lines(row.plan),
    ]
    value = button_value(row)
    buttons = (Button(ButtonAction.APPROVE, "Approve", value, "primary"), Button(ButtonAction.REJECT, "Reject", value, "danger"))
    return HomeItem(text=_clip("\n".join(lines)), buttons=buttons, key=f"approve-{row.id}")


def _open_item(row: RequestRow, now: datetime, zone: tzinfo) -> HomeItem:
    state = RequestState(row.state)
    asked = clock_time(row.created_at, now, zone=zone)
    text = f"{STATE_ICONS[state]} *{request_title(row)}* — {STATE_WORDS[state]}\nin {channel_link(row.channel)}, asked {asked}"
    if state == RequestState.PENDING_APPROVAL:
        text += _expiry(row, now, zone)
        buttons: tuple[Button, ...] = (Button(ButtonAction.CANCEL, "Cancel", button_value(row)),)
    else:
        buttons = (Button(ButtonAction.CANCEL, "Stop", button_value(row), "danger"),)
    return HomeItem(text=_clip(text), buttons=buttons, key=f"open-{row.id}")


def _lock_item(lock: TargetLockRow, now: datetime, zone: tzinfo) -> HomeItem:
    reason = f": {plain_text(lock.reason)}" if lock.reason else ""
    text = (
        f"🔒 *{escape(lock.service)}/{escape(lock.env)}* locked by {mention(lock.holder_id)} "
        f"until {clock_time(lock.expires_at, now, zone=zone)}{reason}"
    )
    return HomeItem(text=_clip(text), key=f"lock-{lock.service}-{lock.env}")


def _freeze_item(freeze: ActiveFreeze, now: datetime, zone: tzinfo) -> HomeItem:
    window = freeze.window
    scope = ", ".join(
        f"{label} {' '.join(escape(name) for name in names)}"
        for label, names in (("runbooks", window.runbooks), ("services", window.services), ("envs", window.envs))
        if names != ["*"]
    )
    effect = "changes are refused" if window.action == "deny" else f"changes need {window.extra_approvals} more approval(s)"
    reason = f": {plain_text(window.reason)}" if window.reason else ""
    until = clock_time(freeze.ends_at, now, zone=zone)
    text = f"❄️ *Freeze {escape(window.name)}* ({scope or 'everything'}) until {until}, {effect}{reason}"
    return HomeItem(text=_clip(text), key=f"freeze-{window.name}")


def _recent_item(row: RequestRow, now: datetime, zone: tzinfo, reader: str) -> HomeItem:
    state = RequestState(row.state)
    ended = row.finished_at or row.updated_at
    text = f"{STATE_ICONS[state]} {request_title(row)} — {STATE_WORDS[state]}, {clock_time(ended, now, zone=zone)}"
    if row.requester_id != reader:  # a run the reader decided on
        text += f" · asked by {mention(row.requester_id)}"
    return HomeItem(text=_clip(text), key=f"recent-{row.id}")


def _expiry(row: RequestRow, now: datetime, zone: tzinfo) -> str:
    return f" · expires {clock_time(row.expires_at, now, zone=zone)}" if row.expires_at is not None else ""


def _plan_lines(plan: list[dict[str, Any]]) -> list[str]:
    """The plan's changes, short: the full plan (a gitops diff too) is in the request's message."""
    if not plan:
        return ["Plan: read-only, nothing changes"]
    lines = []
    for change in plan[:MAX_PLAN_LINES]:
        before = change.get("before") if change.get("before") is not None else "(none)"
        after = change.get("after") if change.get("after") is not None else "(none)"
        arrow = f"{code(_short(before))} → {code(_short(after))}" if before != after else f"{code(_short(before))} (unchanged)"
        lines.append(f"• {escape(change.get('field', ''))} {arrow}" + (" (diff in the request's message)" if change.get("detail") else ""))
    if len(plan) > MAX_PLAN_LINES:
        lines.append(f"• and {len(plan) - MAX_PLAN_LINES} more changes: see the request's message")
    return lines


def _stale_at(facts: HomeFacts, now: datetime) -> datetime | None:
    moments = [lock.expires_at for lock in facts.locks]
    moments += [freeze.ends_at for freeze in facts.freezes]
    moments += [facts.next_freeze_start] if facts.next_freeze_start is not None else []
    moments += [row.expires_at for row in [*facts.to_approve, *facts.own_open] if row.expires_at is not None]
    future = [moment for moment in moments if moment > now]
    return min(future) if future else None


def _short(value: object, limit: int = 120) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _clip(text: str) -> str:
    """Shortened with a visible "…", never inside a ``<@U…>`` mention or an ``&amp;`` entity."""
    if len(text) <= MAX_ITEM_CHARS:
        return text
    cut = text[: MAX_ITEM_CHARS - 1]
    if cut.rfind("<") > cut.rfind(">"):
        cut = cut[: cut.rfind("<")]
    if cut.rfind("&") > cut.rfind(";"):
        cut = cut[: cut.rfind("&")]
    return cut + "…"
