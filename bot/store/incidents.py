"""SQL for incidents. ``open_key`` (unique, NULL once resolved) keeps one live incident per service/env.

Every state change is one conditional UPDATE (``… WHERE id = :id AND state IN (:expected)``)
and reports whether it moved, so two clicks on Acknowledge, or a recovery racing an
acknowledgement, produce exactly one transition.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.store.models import IncidentRow


def open_key(service: str, env: str) -> str:
    """The unique key of a live incident: one per service/env."""
    return f"{service}/{env}"


def live(session: Session) -> list[IncidentRow]:
    """Incidents not yet resolved (watching, open, acknowledged), oldest first."""
    query = select(IncidentRow).where(IncidentRow.open_key.is_not(None)).order_by(IncidentRow.id)
    return list(session.scalars(query))


def get_incident(session: Session, incident_id: int) -> IncidentRow | None:
    return session.get(IncidentRow, incident_id, populate_existing=True)


def live_for(session: Session, *, service: str, env: str) -> IncidentRow | None:
    """The live incident of service/env, if any."""
    return session.scalars(select(IncidentRow).where(IncidentRow.open_key == open_key(service, env))).first()


def insert(
    session: Session, *, service: str, env: str, state: str, reasons: list[str], now: datetime, opened: bool, source: str = "health"
) -> IncidentRow | None:
    """A new live incident for service/env; None if one is live already (another check got there first)."""
    try:
        with session.begin_nested():
            row = IncidentRow(
                service=service,
                env=env,
                open_key=open_key(service, env),
                state=state,
                reasons=reasons,
                first_seen_at=now,
                opened_at=now if opened else None,
                source=source,
            )
            session.add(row)
            session.flush()
    except IntegrityError:
        return None
    return row


def transition(session: Session, incident_id: int, *, expected: Iterable[str], new: str, **values: Any) -> bool:
    """Move the incident to ``new`` only from one of ``expected``; True if it moved."""
    result = session.execute(
        update(IncidentRow)
        .where(IncidentRow.id == incident_id, IncidentRow.state.in_(list(expected)))
        .values(state=new, **values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def set_fields(session: Session, incident_id: int, **values: Any) -> None:
    """Update non-state columns (reasons, message reference)."""
    session.execute(update(IncidentRow).where(IncidentRow.id == incident_id).values(**values).execution_options(synchronize_session=False))


def forget(session: Session, incident_id: int, *, state: str) -> bool:
    """Delete a row still in ``state`` (a watch that recovered before it became an incident)."""
    result = session.execute(
        delete(IncidentRow).where(IncidentRow.id == incident_id, IncidentRow.state == state).execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def recent(session: Session, *, service: str | None = None, limit: int = 20) -> list[IncidentRow]:
    """Newest incidents first (any state)."""
    query = select(IncidentRow).order_by(IncidentRow.id.desc()).limit(limit)
    if service is not None:
        query = query.where(IncidentRow.service == service)
    return list(session.scalars(query))
