"""A digest drawn as a front-end-neutral message: summary first, then small sections a person can scan."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.messages import Message, code, escape
from bot.service_health import ServiceHealth
from bot.watch.digest_content import RUN_OUTCOMES, Change, DigestContent, HeldLock, Pending, summary_line
from bot.watch.insights_render import weekly_section

MAX_HEALTHY_LISTED = 40
"""Past this many healthy services, they are counted per environment instead of listed."""
MAX_CHANGES_LISTED = 30
SECTION_MAX_LINES = 20
SECTION_MAX_CHARS = 2_500
"""Sections stay well under Slack's 3,000-character section limit; long lists become several sections."""

STATE_ICONS: dict[str, str] = {"healthy": "✅", "progressing": "⏳", "degraded": "⚠️", "failed": "❌", "unknown": "❔"}


def render_digest(content: DigestContent) -> Message:
    """The digest as a neutral message: summary first, then small sections a person can scan."""
    zone = _zone(content.timezone)
    summary = summary_line(content)
    local_now = content.generated_at.astimezone(zone)
    sections: list[str] = [f"*{summary}*"]
    attention = [_health_line(item) for item in content.health if not item.is_healthy]
    sections.extend(_chunk("*Needs attention*", attention))
    sections.extend(_chunk("*Healthy*", _healthy_lines([item for item in content.health if item.is_healthy])))
    since = content.since.astimezone(zone).strftime("%a %d %b %H:%M")
    change_lines = [_change_line(change, zone) for change in content.changes[-MAX_CHANGES_LISTED:]]
    if len(content.changes) > MAX_CHANGES_LISTED:
        change_lines.insert(0, f"…{len(content.changes) - MAX_CHANGES_LISTED} earlier changes not shown (see `/ops history`)")
    sections.extend(_chunk(f"*Changes since {since}*", change_lines or ["No deploys, rollbacks, scales or restarts."]))
    sections.extend(_chunk("*Waiting for approval*", [_pending_line(item, content.generated_at) for item in content.pending]))
    sections.extend(_chunk("*Locks*", [_lock_line(item, zone) for item in content.locks]))
    if content.insights is not None:
        sections.append(weekly_section(content.insights))
    return Message(
        text=summary,
        title=f"Health digest · {local_now.strftime('%a %d %b %H:%M')} {local_now.tzname() or content.timezone}",
        sections=tuple(sections),
        context=(f"opsbot · {len(content.health)} service environments · times in {escape(content.timezone)}",),
    )


def _health_line(item: ServiceHealth) -> str:
    parts = [f"{STATE_ICONS.get(item.state, '❔')} *{escape(item.service)}*/{escape(item.env)} — {item.state}", item.counts()]
    if item.version:
        parts.append(code(item.version))
    line = " · ".join(parts)
    if item.reasons:
        line += f" — {escape(item.reasons[0])}"
        if len(item.reasons) > 1:
            line += f" (+{len(item.reasons) - 1} more)"
    return line


def _healthy_lines(healthy: list[ServiceHealth]) -> list[str]:
    if len(healthy) <= MAX_HEALTHY_LISTED:
        return [_health_line(item) for item in healthy]
    per_env = Counter(item.env for item in healthy)
    listed = ", ".join(f"{escape(env)}: {count:,}" for env, count in sorted(per_env.items()))
    return [f"✅ {len(healthy):,} healthy service environments ({listed}) — too many to list"]


def _change_line(change: Change, zone: tzinfo) -> str:
    icon, words = RUN_OUTCOMES[change.outcome]
    number = f"#{change.request_id} " if change.request_id is not None else ""
    detail = f" {escape(change.detail)}" if change.detail else ""
    when = change.at.astimezone(zone).strftime("%a %H:%M")
    target = f"*{escape(change.service)}*/{escape(change.env)}"
    return f"{icon} {number}{escape(change.runbook)} {target}{detail} by {escape(change.by)} — {words} ({when})"


def _pending_line(item: Pending, now: datetime) -> str:
    minutes = max(0, int((now - item.since).total_seconds() // 60))
    target = f"*{escape(item.service)}*/{escape(item.env)}"
    return f"🕒 #{item.request_id} {escape(item.runbook)} {target} by {escape(item.by)}, waiting {minutes} min"


def _lock_line(item: HeldLock, zone: tzinfo) -> str:
    reason = f": {escape(item.reason)}" if item.reason else ""
    kind = "a run of" if item.kind == "run" else "held by"
    until = item.until.astimezone(zone).strftime("%H:%M")
    return f"🔒 *{escape(item.service)}*/{escape(item.env)} — {kind} {escape(item.holder)} until {until}{reason}"


def _chunk(heading: str, lines: list[str]) -> list[str]:
    """``heading`` + lines split into sections of at most 20 lines / 2,500 characters."""
    sections: list[str] = []
    current: list[str] = []
    size = len(heading)
    for full_line in lines:
        line = full_line[: SECTION_MAX_CHARS - len(heading) - 20]
        if current and (len(current) >= SECTION_MAX_LINES or size + len(line) + 1 > SECTION_MAX_CHARS):
            sections.append("\n".join([heading if not sections else f"{heading} (continued)", *current]))
            current, size = [], len(heading)
        current.append(line)
        size += len(line) + 1
    if current:
        sections.append("\n".join([heading if not sections else f"{heading} (continued)", *current]))
    return sections


def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")
