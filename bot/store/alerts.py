"""SQL for Alertmanager alerts, by fingerprint: which copy of a notification acts.

Alertmanager repeats a firing alert every ``repeat_interval``, retries on any non-2xx, and in
a highly available pair each instance sends its own copy, to any replica. The first insert of a
fingerprint (or the one UPDATE that flips it from resolved back to firing) acts; every other
copy changes nothing. The same for resolved: one conditional UPDATE firing → resolved.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.store.models import AlertRow

FIRING = "firing"
RESOLVED = "resolved"


def record_firing(session: Session, *, fingerprint: str, service: str, env: str, starts_at: datetime, summary: str, now: datetime) -> bool:
    """True if this notification is news (a new alert, or one firing again after it resolved); False for a repeat."""
    try:
        with session.begin_nested():
            session.add(
                AlertRow(
                    fingerprint=fingerprint, service=service, env=env, state=FIRING, starts_at=starts_at, summary=summary, updated_at=now
                )
            )
            session.flush()
    except IntegrityError:
        result = session.execute(
            update(AlertRow)
            .where(AlertRow.fingerprint == fingerprint, AlertRow.state == RESOLVED)
            .values(state=FIRING, service=service, env=env, starts_at=starts_at, summary=summary, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]
    return True


def record_resolved(session: Session, *, fingerprint: str, now: datetime) -> AlertRow | None:
    """The alert, if this notification moved it firing → resolved (None: unknown, or already resolved)."""
    result = session.execute(
        update(AlertRow)
        .where(AlertRow.fingerprint == fingerprint, AlertRow.state == FIRING)
        .values(state=RESOLVED, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return session.get(AlertRow, fingerprint, populate_existing=True)


def firing_count(session: Session, *, service: str, env: str) -> int:
    """Alerts still firing for service/env: the incident recovers only when none is left."""
    query = select(func.count()).select_from(AlertRow).where(AlertRow.service == service, AlertRow.env == env, AlertRow.state == FIRING)
    return int(session.scalar(query) or 0)
