"""SQL for inbound-API requests: the id a client is given, its Idempotency-Key, and how the request was settled.

A bearer client's ``Idempotency-Key`` is unique per client (a constraint, not a read-then-write),
so the same POST sent twice, to two replicas at once, makes one request: the second insert
fails and its sender is shown the first one.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.store.models import ApiRequestRow

ACCEPTED = "accepted"
"""Handed to an executor, not yet settled; every other state is final."""
LOST = "lost"
"""Shown, never stored: ``accepted`` for longer than ``SETTLE_DEADLINE`` (the executor died with it)."""
SETTLE_DEADLINE = timedelta(minutes=10)
"""Longer than any plan may take (each backend call has its own timeout); an executor that has not
settled a request by then died with it, and nothing else ever will. A late settle still wins."""


def shown_state(row: ApiRequestRow, now: datetime) -> str:
    """The state a client is shown: ``lost`` once an ``accepted`` request is past ``SETTLE_DEADLINE``."""
    if row.state == ACCEPTED and now - row.created_at > SETTLE_DEADLINE:
        return LOST
    return row.state


def insert(
    session: Session, *, api_id: str, client: str, idempotency_key: str | None, body_sha256: str, state: str, detail: str, now: datetime
) -> ApiRequestRow | None:
    """A new API request; None if this client already used ``idempotency_key``."""
    try:
        with session.begin_nested():
            row = ApiRequestRow(
                id=api_id, client=client, idempotency_key=idempotency_key, body_sha256=body_sha256,
                state=state, detail=detail, created_at=now, updated_at=now,
            )  # fmt: skip
            session.add(row)
            session.flush()
    except IntegrityError:
        return None
    return row


def by_key(session: Session, client: str, idempotency_key: str) -> ApiRequestRow | None:
    query = select(ApiRequestRow).where(ApiRequestRow.client == client, ApiRequestRow.idempotency_key == idempotency_key)
    return session.scalars(query).first()


def get(session: Session, api_id: str) -> ApiRequestRow | None:
    return session.get(ApiRequestRow, api_id, populate_existing=True)


def settle(session: Session, api_id: str, *, state: str, now: datetime, request_id: int | None = None, detail: str = "") -> bool:
    """``accepted`` → ``state``, once; True if it moved."""
    result = session.execute(
        update(ApiRequestRow)
        .where(ApiRequestRow.id == api_id, ApiRequestRow.state == ACCEPTED)
        .values(state=state, request_id=request_id, detail=detail, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def forget(session: Session, api_id: str) -> None:
    """Drop a request nothing was done for (no executor took it), so a retry with the same Idempotency-Key asks again."""
    session.execute(delete(ApiRequestRow).where(ApiRequestRow.id == api_id, ApiRequestRow.state == ACCEPTED))
