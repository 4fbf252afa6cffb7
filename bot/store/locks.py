"""SQL for target locks: one row per (service, env), taken by a run or by a person.

The primary key is the lock: whoever inserts the row holds it. An expired row is
deleted (conditionally) before trying, so a crashed holder cannot block forever.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from bot.store.inserts import insert_new
from bot.store.models import TargetLockRow


def try_acquire(
    session: Session,
    *,
    service: str,
    env: str,
    kind: str,
    holder_id: str,
    holder_name: str,
    now: datetime,
    expires_at: datetime,
    request_id: int | None = None,
    runbook: str = "",
    reason: str = "",
) -> TargetLockRow | None:
    """Take the lock; returns None on success, or the row of whoever holds it."""
    session.execute(
        delete(TargetLockRow)
        .where(TargetLockRow.service == service, TargetLockRow.env == env, TargetLockRow.expires_at <= now)
        .execution_options(synchronize_session=False)
    )
    lock = {
        "service": service, "env": env, "kind": kind, "request_id": request_id, "runbook": runbook, "holder_id": holder_id,
        "holder_name": holder_name, "reason": reason, "acquired_at": now, "expires_at": expires_at,
    }  # fmt: skip
    if insert_new(session, TargetLockRow, lock, key=["service", "env"]):
        return None
    return current(session, service=service, env=env, now=now)


def current(session: Session, *, service: str, env: str, now: datetime) -> TargetLockRow | None:
    """The unexpired lock on the target, if any."""
    row = session.get(TargetLockRow, (service, env), populate_existing=True)
    if row is None or row.expires_at <= now:
        return None
    return row


def release_for_request(session: Session, *, service: str, env: str, request_id: int) -> bool:
    result = session.execute(
        delete(TargetLockRow)
        .where(TargetLockRow.service == service, TargetLockRow.env == env, TargetLockRow.request_id == request_id)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def release_manual(session: Session, *, service: str, env: str) -> TargetLockRow | None:
    """Remove an explicit lock; returns the removed row (None if there was none)."""
    row = session.get(TargetLockRow, (service, env))
    if row is None or row.kind != "manual":
        return None
    session.delete(row)
    session.flush()
    return row


def all_locks(session: Session, now: datetime) -> list[TargetLockRow]:
    query = select(TargetLockRow).where(TargetLockRow.expires_at > now).order_by(TargetLockRow.service, TargetLockRow.env)
    return list(session.scalars(query))
