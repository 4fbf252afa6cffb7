"""SQL for delivery insights: the few audit events the figures need, read as index range scans.

Why these queries and not one pass over the log: a busy log is mostly step events
(``step_started``, ``step_progress`` …) that no figure reads. Every query is a range scan of
``ix_audit_events_event_at`` (event, at) for a few event kinds inside the span, so it touches only
the run endings, starts, incident events and approvals it needs.

Why no self-join (end → its ``started`` by request id): PostgreSQL planned that join, on a freshly
loaded table without statistics, as a scan of every ``started`` event per run end (minutes on a
million events). Reading the starts as one more range scan and pairing them by request id here
costs the same every time, whatever the planner believes. The pairing between runs (which rollback
undid which deploy, which success ended an outage) is done in ``bot.watch.insights``;
docs/insights.md names the events each figure reads, docs/benchmarks.md has the cost on 1,000,000
events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, String, Table, literal, select, type_coerce
from sqlalchemy.orm import Session

from bot.audit.events import EventType
from bot.store.models import AuditEventRow

RUN_END_EVENTS = (str(EventType.SUCCEEDED), str(EventType.FAILED), str(EventType.ROLLED_BACK))
INCIDENT_EVENTS = (str(EventType.INCIDENT_OPENED), str(EventType.INCIDENT_RESOLVED))
_AUDIT: Table = AuditEventRow.__table__  # type: ignore[assignment]
RUN_LOOKBACK = timedelta(days=1)
"""How far before the span a run's ``started`` is looked for: a run has a timeout (default 30 min)."""
APPROVAL_LOOKBACK = timedelta(days=7)
"""How far before the span an ``approval_requested`` is looked for: requests expire long before that."""


@dataclass(frozen=True)
class RunEnd:
    """How one run ended (``succeeded``, ``failed``, ``rolled_back``), with when it started and began rolling back."""

    request_id: int | None
    runbook: str
    service: str
    env: str
    event: str
    outcome: str
    at: datetime
    started_at: datetime | None
    rollback_started_at: datetime | None
    params: str


@dataclass(frozen=True)
class IncidentMark:
    """An ``incident_opened`` or ``incident_resolved`` event."""

    event: str
    service: str
    env: str
    at: datetime


@dataclass(frozen=True)
class ApprovalWait:
    """A request that waited for approval: when it was asked for and when it was approved."""

    service: str
    env: str
    requested_at: datetime
    approved_at: datetime


def run_ends(
    session: Session, *, since: datetime, until: datetime, service: str | None = None, env: str | None = None, with_params: bool = False
) -> list[RunEnd]:
    """Runs of any runbook that ended in [since, until), oldest first, with their ``started`` / ``rollback_started`` times.

    ``params`` (the JSON text, for the deployed version) only ``with_params``: it is most of a row's
    bytes, and only lead time reads it.
    """
    row, times = _AUDIT, _Times(session)
    params = row.c.params if with_params else literal("", String)
    ends = (
        select(row.c.request_id, row.c.runbook, row.c.service, row.c.env, row.c.event, row.c.outcome, times.column(row.c.at), params)
        .where(row.c.event.in_(RUN_END_EVENTS), row.c.at >= since, row.c.at < until, *_target(row, service, env))
        .order_by(row.c.at, row.c.seq)
    )
    marks = _marks(session, times, (str(EventType.STARTED), str(EventType.ROLLBACK_STARTED)), since - RUN_LOOKBACK, until, service, env)
    started, undone = marks[str(EventType.STARTED)], marks[str(EventType.ROLLBACK_STARTED)]
    return [
        RunEnd(
            request_id, runbook, name, where, event, outcome, times.value(ended), started.get(request_id), undone.get(request_id), params
        )
        for request_id, runbook, name, where, event, outcome, ended, params in session.connection().execute(ends)
    ]


def incident_marks(
    session: Session, *, since: datetime, until: datetime, service: str | None = None, env: str | None = None
) -> list[IncidentMark]:
    """Incidents opened or resolved in [since, until), oldest first."""
    row, times = _AUDIT, _Times(session)
    query = (
        select(row.c.event, row.c.service, row.c.env, times.column(row.c.at))
        .where(row.c.event.in_(INCIDENT_EVENTS), row.c.at >= since, row.c.at < until, *_target(row, service, env))
        .order_by(row.c.at, row.c.seq)
    )
    return [IncidentMark(event, name, where, times.value(at)) for event, name, where, at in session.connection().execute(query)]


def approval_waits(
    session: Session, *, since: datetime, until: datetime, service: str | None = None, env: str | None = None
) -> list[ApprovalWait]:
    """Requests approved in [since, until) that had asked for an approval (within ``APPROVAL_LOOKBACK``), oldest first."""
    row, times = _AUDIT, _Times(session)
    approved = (
        select(row.c.request_id, row.c.service, row.c.env, times.column(row.c.at))
        .where(row.c.event == str(EventType.APPROVED), row.c.at >= since, row.c.at < until, *_target(row, service, env))
        .order_by(row.c.at, row.c.seq)
    )
    asked = _marks(session, times, (str(EventType.APPROVAL_REQUESTED),), since - APPROVAL_LOOKBACK, until, service, env)
    requested = asked[str(EventType.APPROVAL_REQUESTED)]
    waits = []
    for request_id, name, where, granted in session.connection().execute(approved):
        if request_id in requested:
            waits.append(ApprovalWait(name, where, requested[request_id], times.value(granted)))
    return waits


def _marks(
    session: Session, times: _Times, events: tuple[str, ...], since: datetime, until: datetime, service: str | None, env: str | None
) -> dict[str, dict[int, datetime]]:
    """event → request id → when, for ``events`` in [since, until): the first of each per request."""
    row = _AUDIT
    query = (
        select(row.c.event, row.c.request_id, times.column(row.c.at))
        .where(row.c.event.in_(events), row.c.at >= since, row.c.at < until, row.c.request_id.is_not(None), *_target(row, service, env))
        .order_by(row.c.seq)
    )
    found: dict[str, dict[int, datetime]] = {event: {} for event in events}
    for event, request_id, at in session.connection().execute(query):
        found[event].setdefault(request_id, times.value(at))
    return found


class _Times:
    """Timestamps as the database can hand them over fastest.

    PostgreSQL's driver returns aware datetimes already. On SQLite, SQLAlchemy parses each stored
    text with a regular expression, which was the largest single cost of these reads; the text
    (always ``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC, see ``UtcDateTime``) is read as it is and parsed
    with ``datetime.fromisoformat`` (in C) instead.
    """

    def __init__(self, session: Session) -> None:
        self.raw_text = session.get_bind().dialect.name == "sqlite"

    def column(self, column: ColumnElement[datetime]) -> ColumnElement[Any]:
        return type_coerce(column, String) if self.raw_text else column

    def value(self, stored: Any) -> datetime:
        if isinstance(stored, str):
            return datetime.fromisoformat(stored).replace(tzinfo=UTC)
        assert isinstance(stored, datetime)
        return stored.astimezone(UTC)

    def maybe(self, stored: Any) -> datetime | None:
        return None if stored is None else self.value(stored)


def _target(table: Any, service: str | None, env: str | None) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if service is not None:
        conditions.append(table.c.service == service)
    if env is not None:
        conditions.append(table.c.env == env)
    return conditions
