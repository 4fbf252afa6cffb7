"""Delivery insights (DORA figures and opsbot's own) as pure functions over the audit records SQL returns.

Why pure: every definition in docs/insights.md is one function here, tested with records written
by hand and checked against figures computed by hand. ``bot.store.insights`` reads the few events
the figures need; ``bot.watch.insights_service`` wires the two and the catalog.

Windows are whole days in a time zone: the current window is today (so far) and the days before
it, the previous window the same number of whole days before that, so a deploy at 23:30 UTC on a
Berlin evening counts on the Berlin day it happened.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.audit.events import EventType
from bot.store.insights import ApprovalWait, IncidentMark, RunEnd

ALL = "*"
"""The service or env of the overall figures."""
NOT_STARTED = "not_started"
"""A run that opsbot refused to start (lock held, target gone): nothing changed, so it is no deploy."""

CommitTimes = Callable[[str, str], datetime | None]
"""(service, version) → when the deployed tag's commit was made, or None if unknown."""


@dataclass(frozen=True)
class Window:
    """[start, end) in UTC, ``days`` local days long, starting at midnight in ``zone``."""

    start: datetime
    end: datetime
    days: int
    zone: str

    def day_of(self, moment: datetime) -> int:
        """The index of the local day ``moment`` falls on (0 = the first day of the window)."""
        local = moment.astimezone(ZoneInfo(self.zone)).date()
        return (local - self.first_day).days

    @property
    def first_day(self) -> date:
        return self.start.astimezone(ZoneInfo(self.zone)).date()

    def holds(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


@dataclass(frozen=True)
class Restore:
    """One outage: when opsbot learned of it, and how long until the target was restored (None: not yet)."""

    started_at: datetime
    seconds: float | None
    cause: str


@dataclass(frozen=True)
class Figures:
    """The figures of one target (or all) in one window. Durations in seconds; None = nothing to measure."""

    days: int
    deploys: int
    changes: int
    failed_changes: int
    daily_deploys: tuple[int, ...]
    daily_failures: tuple[int, ...]
    restores: tuple[Restore, ...] = ()
    restore_days: tuple[int, ...] = ()
    lead_times: tuple[float, ...] = ()
    approval_waits: tuple[float, ...] = ()
    run_durations: tuple[float, ...] = ()

    @property
    def deploys_per_day(self) -> float:
        return self.deploys / self.days if self.days else 0.0

    @property
    def deploys_per_week(self) -> float:
        return self.deploys_per_day * 7

    @property
    def change_failure_rate(self) -> float | None:
        return self.failed_changes / self.changes if self.changes else None

    @property
    def restore_seconds(self) -> tuple[float, ...]:
        return tuple(item.seconds for item in self.restores if item.seconds is not None)

    @property
    def unrestored(self) -> int:
        return sum(1 for item in self.restores if item.seconds is None)

    @property
    def time_to_restore(self) -> float | None:
        """Median time to restore."""
        return percentile(self.restore_seconds, 50)

    @property
    def lead_time(self) -> float | None:
        """Median lead time for changes."""
        return percentile(self.lead_times, 50)


@dataclass(frozen=True)
class TargetInsights:
    """A target's (or, with ``*``, everything's) figures now and in the window before."""

    service: str
    env: str
    current: Figures
    previous: Figures

    @property
    def label(self) -> str:
        if self.service == ALL:
            return "all services"
        return self.service if self.env == ALL else f"{self.service}/{self.env}"


@dataclass(frozen=True)
class InsightsReport:
    """Everything ``/ops insights`` and ``opsbot insights`` show."""

    window: Window
    previous: Window
    overall: TargetInsights
    targets: tuple[TargetInsights, ...]
    services: tuple[TargetInsights, ...] = ()
    """Each service in view over all its environments in view (the charts are per service)."""
    lead_time_note: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Definitions:
    """What counts as a deploy and a rollback, and how long after a deploy a rollback blames it."""

    deploy_runbooks: frozenset[str]
    rollback_runbooks: frozenset[str]
    rollback_within: timedelta


@dataclass(frozen=True)
class Records:
    """The audit records of the whole span (previous window start → now) that the figures read."""

    runs: Sequence[RunEnd]
    incidents: Sequence[IncidentMark]
    approvals: Sequence[ApprovalWait]


# -- windows ---------------------------------------------------------------------------------


def windows(now: datetime, days: int, zone: str) -> tuple[Window, Window]:
    """The current window (``days`` local days ending with today, up to ``now``) and the one before it."""
    tz = ZoneInfo(zone)
    today = now.astimezone(tz).date()
    start = _midnight(today - timedelta(days=days - 1), tz)
    previous_start = _midnight(today - timedelta(days=2 * days - 1), tz)
    return Window(start, now, days, zone), Window(previous_start, start, days, zone)


def _midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


# -- the figures ------------------------------------------------------------------------------


def figures(
    records: Records, window: Window, definitions: Definitions, *, commit_times: CommitTimes | None = None, now: datetime | None = None
) -> Figures:
    """The figures of ``window`` from ``records`` (already narrowed to one target, or all).

    ``records`` must reach past the window's end (to now): a rollback or a restore after the
    window still decides about a change inside it.
    """
    deploys = [run for run in records.runs if run.runbook in definitions.deploy_runbooks and run.outcome != NOT_STARTED]
    rollbacks = [run for run in records.runs if run.runbook in definitions.rollback_runbooks and run.outcome != NOT_STARTED]
    undone = _undone_by_rollback(deploys, rollbacks, definitions.rollback_within)
    daily_deploys = [0] * window.days
    daily_failures = [0] * window.days
    changes = failed = succeeded = 0
    lead_times: list[float] = []
    for run in deploys:
        if not window.holds(run.at):
            continue
        day = window.day_of(run.at)
        changes += 1
        is_failed = run.event != str(EventType.SUCCEEDED) or run in undone
        if run.event == str(EventType.SUCCEEDED):
            succeeded += 1
            daily_deploys[day] += 1
            lead = _lead_time(run, commit_times)
            if lead is not None:
                lead_times.append(lead)
        if is_failed:
            failed += 1
            daily_failures[day] += 1
    restores = [item for item in restores_of(records, definitions, undone) if window.holds(item.started_at)]
    waits = [(item.approved_at - item.requested_at).total_seconds() for item in records.approvals if window.holds(item.approved_at)]
    durations = [(run.at - run.started_at).total_seconds() for run in records.runs if run.started_at is not None and window.holds(run.at)]
    return Figures(
        days=window.days,
        deploys=succeeded,
        changes=changes,
        failed_changes=failed,
        daily_deploys=tuple(daily_deploys),
        daily_failures=tuple(daily_failures),
        restores=tuple(restores),
        restore_days=tuple(window.day_of(item.started_at) for item in restores),
        lead_times=tuple(lead_times),
        approval_waits=tuple(max(0.0, value) for value in waits),
        run_durations=tuple(max(0.0, value) for value in durations),
    )


def merge(parts: Sequence[Figures], days: int) -> Figures:
    """The figures of several targets together, from theirs: counts add up, durations are pooled.

    Exact, not an approximation: every definition pairs events of one target only (a rollback
    blames a deploy of its own target, an outage ends on its own target), so the figures of a
    service or of everything are those of its targets, pooled; medians are taken over the pool.
    """
    restores = sorted(
        ((item, day) for part in parts for item, day in zip(part.restores, part.restore_days, strict=True)),
        key=lambda pair: pair[0].started_at,
    )
    return Figures(
        days=days,
        deploys=sum(part.deploys for part in parts),
        changes=sum(part.changes for part in parts),
        failed_changes=sum(part.failed_changes for part in parts),
        daily_deploys=tuple(sum(values) for values in zip(*(part.daily_deploys for part in parts), strict=True)) or (0,) * days,
        daily_failures=tuple(sum(values) for values in zip(*(part.daily_failures for part in parts), strict=True)) or (0,) * days,
        restores=tuple(item for item, _ in restores),
        restore_days=tuple(day for _, day in restores),
        lead_times=tuple(value for part in parts for value in part.lead_times),
        approval_waits=tuple(value for part in parts for value in part.approval_waits),
        run_durations=tuple(value for part in parts for value in part.run_durations),
    )


def restores_of(records: Records, definitions: Definitions, undone: dict[RunEnd, RunEnd] | None = None) -> list[Restore]:
    """Every outage in ``records``, oldest first, with how long it took to restore.

    * an incident: ``incident_opened`` → the next ``incident_resolved`` of its target;
    * a deploy that failed: its ``failed`` event → the next success of a deploy or rollback on
      its target, or the next ``incident_resolved`` there, whichever is first;
    * a deploy rolled back automatically: ``rollback_started`` → its ``rolled_back`` event;
    * a deploy undone by a rollback run: the rollback's start → the rollback's success.
    """
    deploys = [run for run in records.runs if run.runbook in definitions.deploy_runbooks and run.outcome != NOT_STARTED]
    if undone is None:
        rollbacks = [run for run in records.runs if run.runbook in definitions.rollback_runbooks and run.outcome != NOT_STARTED]
        undone = _undone_by_rollback(deploys, rollbacks, definitions.rollback_within)
    healed: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for run in records.runs:
        restoring = run.runbook in definitions.deploy_runbooks or run.runbook in definitions.rollback_runbooks
        if restoring and run.event == str(EventType.SUCCEEDED):
            healed[(run.service, run.env)].append(run.at)
    resolved: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for mark in records.incidents:
        if mark.event == str(EventType.INCIDENT_RESOLVED):
            resolved[(mark.service, mark.env)].append(mark.at)
    found: list[Restore] = []
    for mark in records.incidents:
        if mark.event == str(EventType.INCIDENT_OPENED):
            end = _first_after(resolved[(mark.service, mark.env)], mark.at)
            found.append(_restore(mark.at, end, "incident"))
    for run in deploys:
        key = (run.service, run.env)
        if run.event == str(EventType.FAILED):
            ends = [when for when in (_first_after(healed[key], run.at), _first_after(resolved[key], run.at)) if when is not None]
            found.append(_restore(run.at, min(ends) if ends else None, "failed deploy"))
        elif run.event == str(EventType.ROLLED_BACK):
            found.append(_restore(run.rollback_started_at or run.at, run.at, "automatic rollback"))
    for rollback in undone.values():
        if rollback.event == str(EventType.SUCCEEDED):
            found.append(_restore(rollback.started_at or rollback.at, rollback.at, "rollback"))
        else:
            end = _first_after(healed[(rollback.service, rollback.env)], rollback.at)
            found.append(_restore(rollback.started_at or rollback.at, end, "rollback"))
    return sorted(found, key=lambda item: item.started_at)


def split(records: Records, *, by_env: bool = True) -> dict[tuple[str, str], Records]:
    """The records of each target (or, without ``by_env``, each service under env ``*``), in one pass."""
    runs: dict[tuple[str, str], list[RunEnd]] = defaultdict(list)
    incidents: dict[tuple[str, str], list[IncidentMark]] = defaultdict(list)
    approvals: dict[tuple[str, str], list[ApprovalWait]] = defaultdict(list)
    for run in records.runs:
        runs[(run.service, run.env if by_env else ALL)].append(run)
    for mark in records.incidents:
        incidents[(mark.service, mark.env if by_env else ALL)].append(mark)
    for wait in records.approvals:
        approvals[(wait.service, wait.env if by_env else ALL)].append(wait)
    return {key: Records(runs[key], incidents[key], approvals[key]) for key in {*runs, *incidents, *approvals}}


def percentile(values: Iterable[float], wanted: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least ``wanted`` % of the values at or below it."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, math.ceil(wanted / 100 * len(ordered)))
    return ordered[rank - 1]


def change(current: float | None, previous: float | None) -> float | None:
    """Relative change (+0.25 = up 25 %); None when there is nothing to compare with."""
    if current is None or previous is None or previous == 0:
        return None
    return (current - previous) / previous


# -- helpers ----------------------------------------------------------------------------------


def _undone_by_rollback(deploys: Sequence[RunEnd], rollbacks: Sequence[RunEnd], within: timedelta) -> dict[RunEnd, RunEnd]:
    """Successful deploys that a rollback run on their target started within ``within`` after: deploy → rollback.

    A rollback blames the latest successful deploy before it (one rollback undoes one deploy).
    """
    blamed: dict[RunEnd, RunEnd] = {}
    by_target: dict[tuple[str, str], list[RunEnd]] = defaultdict(list)
    for run in deploys:
        if run.event == str(EventType.SUCCEEDED):
            by_target[(run.service, run.env)].append(run)
    for rollback in rollbacks:
        began = rollback.started_at or rollback.at
        earlier = [run for run in by_target[(rollback.service, rollback.env)] if run.at <= began]
        if not earlier:
            continue
        latest = max(earlier, key=lambda run: run.at)
        if began - latest.at <= within and latest not in blamed:
            blamed[latest] = rollback
    return blamed


def _lead_time(run: RunEnd, commit_times: CommitTimes | None) -> float | None:
    if commit_times is None:
        return None
    version = _version(run.params)
    if not version:
        return None
    committed = commit_times(run.service, version)
    if committed is None:
        return None
    return max(0.0, (run.at - committed).total_seconds())


def _version(params: str) -> str:
    try:
        values = json.loads(params) if params else {}
    except ValueError:
        return ""
    return str(values.get("version") or "") if isinstance(values, dict) else ""


def _first_after(moments: list[datetime], after: datetime) -> datetime | None:
    return next((moment for moment in moments if moment >= after), None)


def _restore(started: datetime, ended: datetime | None, cause: str) -> Restore:
    return Restore(started, None if ended is None else max(0.0, (ended - started).total_seconds()), cause)
