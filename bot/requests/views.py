"""Builders for every message the bot sends about requests, locks and history.

One place for wording, so Slack and the shell say exactly the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from bot.catalog.durations import humanize_age
from bot.messages import Button, ButtonAction, Message, code, escape, mention, plain_text
from bot.runs.run_view import RunView
from bot.store.models import ApprovalRow, RequestRow, TargetLockRow
from bot.store.states import FINAL_STATES, RequestState
from bot.timefmt import clock_time, date_time

STEP_ICONS = {"pending": "◻️", "running": "⏳", "done": "✅", "failed": "❌", "skipped": "➖", "cancelled": "⏹️"}
STATE_WORDS = {
    RequestState.PENDING_APPROVAL: "waiting for approval",
    RequestState.APPROVED: "approved, about to start",
    RequestState.RUNNING: "running",
    RequestState.SUCCEEDED: "succeeded",
    RequestState.FAILED: "failed",
    RequestState.ROLLED_BACK: "failed and was rolled back",
    RequestState.INTERRUPTED: "interrupted (the bot stopped while it ran)",
    RequestState.REJECTED: "rejected",
    RequestState.EXPIRED: "expired without enough approvals",
    RequestState.CANCELLED: "cancelled",
    RequestState.NOT_STARTED: "not started",
}
"""How each state reads in a sentence: "#12 … is {words}"."""

STATE_ICONS = {
    RequestState.PENDING_APPROVAL: "🕒",
    RequestState.APPROVED: "👍",
    RequestState.RUNNING: "⏳",
    RequestState.SUCCEEDED: "✅",
    RequestState.FAILED: "❌",
    RequestState.ROLLED_BACK: "↩️",
    RequestState.INTERRUPTED: "⚠️",
    RequestState.REJECTED: "🚫",
    RequestState.EXPIRED: "⌛",
    RequestState.CANCELLED: "⏹️",
    RequestState.NOT_STARTED: "⛔",
}


def request_title(row: RequestRow) -> str:
    """``#12 deploy checkout 1.4.2 to production`` from the stored parameters."""
    extras = [escape(value) for name, value in row.params.items() if name not in ("service", "env") and value is not None]
    words = " ".join([row.runbook, escape(row.service), *extras])
    return f"#{row.id} {words} in {escape(row.env)}"


def button_value(row: RequestRow) -> str:
    """Binds a click to exactly what was shown: the request, its parameters and its plan."""
    return f"{row.id}:{row.params_hash[:16]}:{row.plan_hash[:16]}"


def request_message(
    row: RequestRow,
    *,
    votes: Sequence[ApprovalRow] = (),
    run: RunView | None = None,
    target: str = "",
    now: datetime,
) -> Message:
    """The request's one message, updated in place from ask to result."""
    state = RequestState(row.state)
    title = f"{STATE_ICONS[state]} {request_title(row)}"
    fields: list[tuple[str, str]] = [
        ("Requested by", mention(row.requester_id)),
        ("Target", escape(target) if target else f"{escape(row.service)}/{escape(row.env)}"),
        ("State", STATE_WORDS[state]),
    ]
    approvals = [vote for vote in votes if vote.decision == "approve"]
    if row.approvals_required:
        names = ", ".join(mention(vote.user_id) for vote in approvals) or "none yet"
        fields.append((f"Approvals ({len(approvals)}/{row.approvals_required})", names))
    rejections = [vote for vote in votes if vote.decision == "reject"]
    if rejections:
        fields.append(("Rejected by", ", ".join(mention(vote.user_id) for vote in rejections)))
    sections = [_plan_section(row.plan)]
    changing = whats_changing_section(row.plan)
    if changing:
        sections.append(changing)
    if state == RequestState.PENDING_APPROVAL:
        sections.append(_approval_section(row, now))
    if run is not None and run.steps:
        sections.append(_steps_section(run))
    if row.result and state in FINAL_STATES:
        sections.append(f"*Result:* {escape(row.result)}")
    context = [f"request #{row.id} · params {row.params_hash[:12]} · plan {row.plan_hash[:12]}"]
    if run is not None and run.duration_seconds is not None:
        context.append(f"took {run.duration_seconds:.1f}s")
    return Message(
        text=f"{request_title(row)}: {STATE_WORDS[state]}",
        title=title,
        sections=tuple(sections),
        fields=tuple(fields),
        buttons=_buttons(row, state),
        context=tuple(context),
    )


def _plan_section(plan: list[dict[str, Any]]) -> str:
    if not plan:
        return "*Plan:* read-only, nothing changes"
    lines = []
    for change in plan:
        if change.get("context"):
            continue
        before = change.get("before") if change.get("before") is not None else "(none)"
        after = change.get("after") if change.get("after") is not None else "(none)"
        arrow = f"{code(before)} → {code(after)}" if before != after else f"{code(before)} (unchanged)"
        lines.append(f"• {escape(change.get('field', ''))} {arrow}")
        if change.get("detail"):  # a gitops diff: shown whole, as the approver must see every changed line
            lines.append("```\n" + escape(str(change["detail"])).replace("```", "ˋˋˋ") + "\n```")
    return "*Plan:*\n" + "\n".join(lines)


def whats_changing_section(plan: list[dict[str, Any]]) -> str:
    """The plan's context entries: commits, pull requests, the image in its registry, checks (``bot.backends.source``).

    Their ``lines`` are mrkdwn the backend made safe (titles as plain text, the compare link as a link).
    """
    entries = [change for change in plan if change.get("context")]
    if not entries:
        return ""
    lines = []
    for entry in entries:
        field, before, after = escape(entry.get("field", "")), entry.get("before"), entry.get("after")
        head = f"• *{field}* {code(before)}...{code(after)}" if before is not None else f"• *{field}:* {escape(after)}"
        details = [str(line) for line in entry.get("lines") or []]
        if before is not None and details:  # the summary ("3 commits") reads on the heading's line
            head, details = f"{head}: {details[0]}", details[1:]
        lines.append(head)
        lines.extend(f"    {line}" for line in details)
    return "*What's changing:*\n" + "\n".join(lines)


def _approval_section(row: RequestRow, now: datetime) -> str:
    text = f"*Policy:* {escape(row.policy_reason)}"
    if row.expires_at is not None:
        minutes = max(0, int((row.expires_at - now).total_seconds() // 60))
        text += f"\n*Expires:* in {minutes} min ({clock_time(row.expires_at, now)}); the requester cannot approve"
    return text


def _steps_section(run: RunView) -> str:
    lines = [
        f"{STEP_ICONS.get(step.state, '•')} {escape(step.title)}" + (f" — {escape(step.summary)}" if step.summary else "")
        for step in run.steps
    ]
    if run.progress:
        lines.append("> " + escape(run.progress[-1]))
    return "*Steps:*\n" + "\n".join(lines)


def _buttons(row: RequestRow, state: RequestState) -> tuple[Button, ...]:
    value = button_value(row)
    if state == RequestState.PENDING_APPROVAL:
        return (
            Button(ButtonAction.APPROVE, "Approve", value, "primary"),
            Button(ButtonAction.REJECT, "Reject", value, "danger"),
            Button(ButtonAction.CANCEL, "Cancel", value),
        )
    if state in (RequestState.RUNNING, RequestState.APPROVED):
        return (Button(ButtonAction.CANCEL, "Stop", value, "danger"),)
    return ()


def lock_text(lock: TargetLockRow, now: datetime) -> str:
    """``checkout/production is locked by request #12 (deploy by <@U1>, 3 min ago)`` (mrkdwn; the run engine words it plainly)."""
    age = humanize_age((now - lock.acquired_at).total_seconds())
    who = mention(lock.holder_id)
    target = f"{escape(lock.service)}/{escape(lock.env)}"
    if lock.kind == "run" and lock.request_id is not None:
        return f"{target} is locked by request #{lock.request_id} ({escape(lock.runbook)} by {who}, {age})."
    reason = f": {plain_text(lock.reason)}" if lock.reason else ""
    until = clock_time(lock.expires_at, now)
    return f"{target} is locked by {who} ({age}, until {until}){reason}."


def history_message(rows: Sequence[RequestRow], heading: str, deciders: Mapping[int, tuple[str, str] | None] | None = None) -> Message:
    """One line per request: its outcome, who asked, and who did the last thing to it when that was someone else."""
    if not rows:
        return Message.plain(f"{heading}: nothing yet.")
    lines = []
    for row in rows:
        who = f"asked by {mention(row.requester_id)}"
        decided = (deciders or {}).get(row.id)
        if decided is not None and decided[0] != "asked by":
            who += f", {decided[0]} {mention(decided[1])}"
        lines.append(
            f"{STATE_ICONS[RequestState(row.state)]} {request_title(row)} — {STATE_WORDS[RequestState(row.state)]}; "
            f"{who}, {date_time(row.created_at)}"
        )
    return Message(text=f"{heading}: {len(rows)} requests", title=heading, sections=("\n".join(lines),))
