"""SQL for delivery insights: the few audit events the figures need, read in three indexed queries.

Why these queries and not one pass over the log: a busy log is mostly step events
(``step_started``, ``step_progress`` …) that no figure reads. Each query starts from
``ix_audit_events_event_at`` (event, at), so it touches only the run endings, incident
events or approvals inside the span, and joins a run's ``started`` / ``rollback_started``
event through ``ix_audit_events_request_id``. The pairing (which rollback undid which
deploy, which success ended an outage) is done over these small results in
``bot.watch.insights``; docs/insights.md names the events each figure reads, and
docs/benchmarks.md has the cost on 1,000,000 events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, select
from sqlalchemy.orm import Session, aliased

from bot.audit.events import EventType
from bot.store.models import AuditEventRow

RUN_END_EVENTS = (str(EventType.SUCCEEDED), str(EventType.FAILED), str(EventType.ROLLED_BACK))
INCIDENT_EVENTS = (str(EventType.INCIDENT_OPENED), str(EventType.INCIDENT_RESOLVED))


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


def run_ends(session: Session, *, since: datetime, until: datetime, service: str | None = None, env: str | None = None) -> list[RunEnd]:
    """Runs of any runbook that ended in [since, until), oldest first."""
    end = aliased(AuditEventRow, name="run_end")
    start = aliased(AuditEventRow, name="run_start")
    undo = aliased(AuditEventRow, name="run_undo")
    query = (
        select(
            end.request_id,
            end.runbook,
            end.service,
            end.env,
            end.event,
            end.outcome,
            end.at,
            start.at,
            undo.at,
            end.params,
        )
        .outerjoin(start, and_(start.request_id == end.request_id, start.event == str(EventType.STARTED)))
        .outerjoin(undo, and_(undo.request_id == end.request_id, undo.event == str(EventType.ROLLBACK_STARTED)))
        .where(end.event.in_(RUN_END_EVENTS), end.at >= since, end.at < until, *_target(end, service, env))
        .order_by(end.at, end.seq)
    )
    return [
        RunEnd(request_id, runbook, found_service, found_env, event, outcome, ended, started, undo_started, params)
        for request_id, runbook, found_service, found_env, event, outcome, ended, started, undo_started, params in session.execute(query)
    ]


def incident_marks(
    session: Session, *, since: datetime, until: datetime, service: str | None = None, env: str | None = None
) -> list[IncidentMark]:
    """Incidents opened or resolved in [since, until), oldest first."""
    row = AuditEventRow
    query = (
        select(row.event, row.service, row.env, row.at)
        .where(row.event.in_(INCIDENT_EVENTS), row.at >= since, row.at < until, *_target(row, service, env))
        .order_by(row.at, row.seq)
    )
    return [IncidentMark(*found) for found in session.execute(query)]


def approval_waits(
    session: Session, *, since: datetime, until: datetime, service: str | None = None, env: str | None = None
) -> list[ApprovalWait]:
    """Requests approved in [since, until) that had asked for an approval, oldest approval first."""
    approved = aliased(AuditEventRow, name="approved")
    asked = aliased(AuditEventRow, name="asked")
    query = (
        select(approved.service, approved.env, asked.at, approved.at)
        .join(asked, and_(asked.request_id == approved.request_id, asked.event == str(EventType.APPROVAL_REQUESTED)))
        .where(approved.event == str(EventType.APPROVED), approved.at >= since, approved.at < until, *_target(approved, service, env))
        .order_by(approved.at, approved.seq)
    )
    return [ApprovalWait(*found) for found in session.execute(query)]


def _target(table: Any, service: str | None, env: str | None) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if service is not None:
        conditions.append(table.service == service)
    if env is not None:
        conditions.append(table.env == env)
    return conditions
