"""The access policy as a pure function: may this person run this, here, now, and who must approve.

Deny by default: with no rule matching (runbook, service, env) the answer is no. The first
matching rule decides. A runbook's own ``approval`` is a minimum the config can raise but
never lower. Freeze windows deny, or add approvals, with the reason shown to the user. A rule
with ``require_checks`` adds one approval when the facts of the plan say the target version's
checks are not green (the caller reads them from the plan; nothing here calls GitHub).
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.catalog.config import AccessRule, ApprovalRule, FreezeWindow, OpsbotConfig
from bot.catalog.runbooks import Runbook
from bot.messages import api_client_of, code, escape
from bot.requests.groups import GroupDirectory
from commands.durations import format_duration
from commands.values import ParamValue

WEEK_MINUTES = 7 * 24 * 60
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
NEVER_FROZEN = frozenset({"read", "digest", "acknowledge"})
GREEN_CHECKS = "success"
CHECKS_WORDS = {
    "failure": "are failing",
    "pending": "are still running",
    "none": "reported nothing",
    "unknown": "could not be read from GitHub",
}


@dataclass(frozen=True)
class ApprovalRequirement:
    """How many approvals from whom, by when; ``count == 0`` means the request runs at once."""

    count: int
    approvers: tuple[str, ...] = ()
    expires_in: timedelta = timedelta(minutes=30)
    notes: tuple[str, ...] = ()

    def describe(self, env: str) -> str:
        if self.count == 0:
            return f"{env} needs no approval"
        noun = "approval" if self.count == 1 else "approvals"
        groups = ", ".join(f"@{group}" for group in self.approvers)
        text = f"{env} needs {self.count} {noun} from {groups} within {format_duration(self.expires_in)}"
        return text + "".join(f"; {note}" for note in self.notes)


@dataclass(frozen=True)
class Decision:
    """Allowed or not, always with a reason a person can read."""

    allowed: bool
    reason: str
    rule: str | None = None
    approval: ApprovalRequirement = field(default_factory=lambda: ApprovalRequirement(count=0))


@dataclass(frozen=True)
class ChangeFacts:
    """What a request's plan found out about the change, as the policy needs it.

    ``checks`` is the target version's checks on GitHub: ``success`` (green), ``failure``,
    ``pending``, ``none`` (nothing reported), ``unknown`` (GitHub could not be asked), or None
    when the plan has no checks entry (no ``source``, or no version change).
    """

    checks: str | None = None


@dataclass(frozen=True)
class Subject:
    """Who is asking, from where."""

    user_id: str
    channel: str


def evaluate(
    config: OpsbotConfig,
    groups: GroupDirectory,
    *,
    command: str,
    runbook: Runbook | None,
    service: str,
    env: str,
    params: dict[str, ParamValue],
    subject: Subject,
    now: datetime,
    facts: ChangeFacts | None = None,
) -> Decision:
    """The policy's answer for one request (``runbook`` is None for built-ins like lock); ``facts`` once a plan exists."""
    found = _first_rule(config, command, service, env)
    if found is None:
        return Decision(False, f"No policy rule allows `{command}` on {service}/{env}; nobody may run it (deny by default).")
    index, rule = found
    label = rule.label(index)
    refusal = _who_and_where(rule, groups, subject, command, env, label) or _limits(rule, params, env, label)
    if refusal is not None:
        return Decision(False, refusal, rule=label)
    approval = _approval(runbook, rule, env) if runbook is not None else ApprovalRequirement(count=0)
    for freeze in active_freezes(config, command, service, env, now):
        outcome = _apply_freeze(freeze, approval, command, env, now)
        if isinstance(outcome, str):
            return Decision(False, outcome, rule=label)
        approval = outcome
    if runbook is not None and rule.require_checks and facts is not None and facts.checks not in (None, GREEN_CHECKS):
        approval = _checks_not_green(approval, rule, str(facts.checks))
    return Decision(True, f"allowed by {label}", rule=label, approval=approval)


def active_freezes(config: OpsbotConfig, command: str, service: str, env: str, now: datetime) -> list[FreezeWindow]:
    """Freeze windows covering (command, service, env) at ``now``.

    A freeze stops changes: reading requests, a digest and acknowledging an incident are frozen
    only by a window that names them, never by ``runbooks: ["*"]``.
    """
    return [
        freeze
        for freeze in config.policy.freezes
        if freeze.matches(command, service, env)
        and freeze_active(freeze, now)
        and (command not in NEVER_FROZEN or command in freeze.runbooks)
    ]


def freeze_active(freeze: FreezeWindow, now: datetime) -> bool:
    """Whether ``now`` falls in the weekly window, read on the wall clock of its time zone."""
    local = now.astimezone(zoneinfo.ZoneInfo(freeze.timezone))
    minute = local.weekday() * 1440 + local.hour * 60 + local.minute
    start, end = _week_minute(freeze.start), _week_minute(freeze.end)
    if start <= end:
        return start <= minute < end
    return minute >= start or minute < end


def freeze_ends_at(freeze: FreezeWindow, now: datetime) -> datetime:
    """When the window next ends after ``now`` (for an active one: when it lifts)."""
    return _next_wall_time(freeze.end, freeze.timezone, now)


def freeze_starts_at(freeze: FreezeWindow, now: datetime) -> datetime:
    """When the window next begins after ``now``."""
    return _next_wall_time(freeze.start, freeze.timezone, now)


def _first_rule(config: OpsbotConfig, command: str, service: str, env: str) -> tuple[int, AccessRule] | None:
    for index, rule in enumerate(config.policy.rules):
        if rule.matches(command, service, env):
            return index, rule
    return None


def _who_and_where(rule: AccessRule, groups: GroupDirectory, subject: Subject, command: str, env: str, label: str) -> str | None:
    allow = rule.allow
    client = api_client_of(subject.user_id)
    if client is not None:
        # A program is allowed only where a rule names it: never by users "*" or a group.
        if client not in allow.clients:
            return f"API client {code(client)} may not run `{command}` in {env}: {label} does not list it under allow.clients."
    elif not ("*" in allow.users or subject.user_id in allow.users or groups.is_member(subject.user_id, allow.groups)):
        who = ", ".join(f"@{group}" for group in allow.groups) or "the users listed in the rule"
        return f"Only members of {who} may run `{command}` in {env} ({label})."
    if allow.channels and subject.channel not in allow.channels:
        where = ", ".join(f"<#{channel}>" for channel in allow.channels)
        return f"`{command}` in {env} may only be run from {where} ({label})."
    return None


def _limits(rule: AccessRule, params: dict[str, ParamValue], env: str, label: str) -> str | None:
    for name, limit in rule.limits.items():
        value = params.get(name)
        if value is None:
            continue
        if isinstance(value, int):
            if limit.min is not None and value < limit.min:
                return f"{name} {value} is below the {env} minimum of {limit.min} ({label})."
            if limit.max is not None and value > limit.max:
                return f"{name} {value} is above the {env} limit of {limit.max} ({label})."
        if limit.allowed is not None and str(value) not in limit.allowed:
            return f"{name} {escape(value)} is not allowed in {env}; allowed: {', '.join(limit.allowed)} ({label})."
    return None


def _approval(runbook: Runbook, rule: AccessRule, env: str) -> ApprovalRequirement:
    """The stricter of the runbook's minimum and the rule: more approvals, shorter expiry."""
    minimum: ApprovalRule | None = runbook.approval_for(env)
    configured: ApprovalRule | None = rule.approvals
    rules = [item for item in (minimum, configured) if item is not None and item.count > 0]
    if not rules:
        return ApprovalRequirement(count=0)
    approvers = configured.approvers if configured is not None and configured.count > 0 else rules[0].approvers
    return ApprovalRequirement(
        count=max(item.count for item in rules),
        approvers=tuple(approvers),
        expires_in=min(item.expires_in for item in rules),
    )


def _apply_freeze(freeze: FreezeWindow, approval: ApprovalRequirement, command: str, env: str, now: datetime) -> ApprovalRequirement | str:
    window = f"{freeze.name}, {freeze.start} – {freeze.end} {freeze.timezone}"
    reason = f"{freeze.reason} " if freeze.reason else ""
    if freeze.action == "deny":
        return f"`{command}` in {env} is frozen now: {reason}({window})."
    if not approval.approvers:
        return f"`{command}` in {env} is frozen now and no approver group is configured to lift it: {reason}({window})."
    note = f"freeze '{freeze.name}' adds {freeze.extra_approvals}: {freeze.reason or window}"
    return ApprovalRequirement(
        count=approval.count + freeze.extra_approvals,
        approvers=approval.approvers,
        expires_in=approval.expires_in,
        notes=(*approval.notes, note),
    )


def _checks_not_green(approval: ApprovalRequirement, rule: AccessRule, checks: str) -> ApprovalRequirement:
    """One more approval; from the rule's approvers when nothing else asked for any (``AccessRule`` insists they exist)."""
    why = CHECKS_WORDS.get(checks, f"are {checks}")
    configured = rule.approvals
    approvers = approval.approvers or (tuple(configured.approvers) if configured is not None else ())
    expires_in = approval.expires_in if approval.count or configured is None else configured.expires_in
    return ApprovalRequirement(
        count=approval.count + 1,
        approvers=approvers,
        expires_in=expires_in,
        notes=(*approval.notes, f"require_checks adds 1: the new version's checks {why}"),
    )


def _next_wall_time(day_time: str, timezone: str, now: datetime) -> datetime:
    """The next ``fri 16:00`` after ``now`` on the wall clock of ``timezone``.

    Counted in local minutes, as ``freeze_active`` reads the window, so a DST change moves the
    moment with the clock.
    """
    zone = zoneinfo.ZoneInfo(timezone)
    local = now.astimezone(zone)
    minute = local.weekday() * 1440 + local.hour * 60 + local.minute
    ahead = (_week_minute(day_time) - minute) % WEEK_MINUTES or WEEK_MINUTES
    moment = local.replace(second=0, microsecond=0, tzinfo=None) + timedelta(minutes=ahead)
    return moment.replace(tzinfo=zone)


def _week_minute(day_time: str) -> int:
    day, clock = day_time.split()
    hours, minutes = clock.split(":")
    return DAYS.index(day) * 1440 + int(hours) * 60 + int(minutes)
