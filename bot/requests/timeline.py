"""A request's audit events said as a person reads them, and who did the last thing.

The audit log stores machine words (``step_started opsbot started``) so it can be hashed and
exported; ``/ops show`` and ``/ops history`` say what happened: which step, who approved,
who rejected. Events this module does not know fall back to their name, so a new event
type never breaks a timeline.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from bot.messages import escape
from bot.store.models import AuditEventRow
from bot.timefmt import clock_time

_PHRASES = {
    "command_received": "{who} asked for it",
    "approval_requested": "approval requested",
    "approval_given": "{who} approved",
    "approval_refused": "{who} could not approve ({outcome})",
    "rejected": "{who} rejected it",
    "expired": "the approval request expired",
    "cancelled": "{who} cancelled it",
    "cancel_requested": "{who} asked to stop it",
    "started": "the run started",
    "step_started": "step “{step}” started",
    "step_progress": "step “{step}”: {message}",
    "step_finished": "step “{step}” done: {summary}",
    "step_failed": "step “{step}” failed: {error}",
    "succeeded": "succeeded",
    "failed": "failed",
    "rollback_started": "rolling back",
    "rolled_back": "rolled back",
    "interrupted": "interrupted: the bot stopped while it ran",
}

_DECISIONS = {
    "command_received": "asked by",
    "approval_given": "approved by",
    "approved": "approved by",
    "rejected": "rejected by",
    "cancelled": "cancelled by",
    "cancel_requested": "stopped by",
}
"""Events a person does to a request, and how history names that person."""


def timeline_line(event: AuditEventRow) -> str:
    """``06:13:33 step “Set the new image” started`` (mrkdwn-safe)."""
    details = _details(event)
    who = f"@{event.actor_name}" if event.actor_id else "opsbot"
    if event.event == "approved":
        phrase = "approved: no approval needed" if event.outcome == "no_approval_needed" else f"approved ({who})"
    else:
        template = _PHRASES.get(event.event)
        values = {"who": who, "outcome": event.outcome.replace("_", " "), **{key: _short(value) for key, value in details.items()}}
        phrase = _fill(template, values) if template else event.event.replace("_", " ")
    return f"{clock_time(event.at, event.at)} {escape(phrase)}"


def last_actor(events: Sequence[AuditEventRow]) -> tuple[str, str] | None:
    """(``"rejected by"``, user id) of the newest thing a person did to the request, if any."""
    for event in reversed(events):
        verb = _DECISIONS.get(event.event)
        if verb is not None and event.actor_id:
            return verb, event.actor_id
    return None


def _fill(template: str, values: dict[str, str]) -> str:
    try:
        return template.format(**values)
    except KeyError:
        return template.split(":", maxsplit=1)[0].format_map(_Blank(values))


class _Blank(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "?"


def _details(event: AuditEventRow) -> dict[str, Any]:
    try:
        loaded = json.loads(event.details or "{}")
    except ValueError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _short(value: object) -> str:
    text = str(value)
    return text if len(text) <= 160 else text[:157] + "…"
