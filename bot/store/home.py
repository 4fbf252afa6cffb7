"""SQL for the App Home: who has opened it, the view last published for them, and what their home lists.

A person's home is drawn from the same rows as the channel messages (requests, votes, locks):
these queries only pick the rows that concern one person, newest first, each bounded by a
``limit`` (a home shows a handful of each and says how many more there are).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from bot.store.models import ApprovalRow, HomeViewerRow, RequestRow, TargetLockRow
from bot.store.states import FINAL_STATES, RequestState

OPEN_STATES = (RequestState.PENDING_APPROVAL, RequestState.APPROVED, RequestState.RUNNING)
"""A request is open (Cancel or Stop still means something) until it reaches a final state."""


def remember_opened(session: Session, user_id: str, now: datetime) -> None:
    """Record that ``user_id`` opened the home (the first time, or again)."""
    row = session.get(HomeViewerRow, user_id)
    if row is None:
        session.add(HomeViewerRow(user_id=user_id, first_opened_at=now, last_opened_at=now))
    else:
        row.last_opened_at = now
    session.flush()


def record_published(session: Session, user_id: str, view_id: str | None, now: datetime) -> None:
    """Remember the home view Slack answered for ``user_id`` (clicks from the home must come from it)."""
    row = session.get(HomeViewerRow, user_id)
    if row is None:
        row = HomeViewerRow(user_id=user_id, first_opened_at=now, last_opened_at=now)
        session.add(row)
    if view_id:
        row.view_id = view_id
    row.published_at = now
    session.flush()


def published_view(session: Session, user_id: str) -> str | None:
    """The id of the home view opsbot last published for ``user_id`` (None if never)."""
    return session.execute(select(HomeViewerRow.view_id).where(HomeViewerRow.user_id == user_id)).scalar_one_or_none()


def viewers(session: Session, among: Collection[str] | None = None) -> set[str]:
    """Everyone who has opened the home (or those of ``among`` who have)."""
    query = select(HomeViewerRow.user_id)
    if among is not None:
        if not among:
            return set()
        query = query.where(HomeViewerRow.user_id.in_(sorted(among)))
    return set(session.scalars(query))


def open_requests_of(session: Session, user_id: str, limit: int) -> tuple[list[RequestRow], int]:
    """The person's own requests not yet ended, newest first (at most ``limit``), and how many there are."""
    where = (RequestRow.requester_id == user_id, RequestRow.state.in_([str(state) for state in OPEN_STATES]))
    return _page(session, where, limit, order=RequestRow.id.desc())


def pending_for_others(session: Session, user_id: str, now: datetime, limit: int) -> list[RequestRow]:
    """Requests by others still waiting for approval and not past their deadline, oldest deadline first.

    Whether the person may approve one depends on group membership, which is not SQL (Slack user
    groups): the caller filters, so ``limit`` here is generous.
    """
    query = (
        select(RequestRow)
        .where(
            RequestRow.state == str(RequestState.PENDING_APPROVAL),
            RequestRow.requester_id != user_id,
            or_(RequestRow.expires_at.is_(None), RequestRow.expires_at > now),
        )
        .order_by(RequestRow.id)
        .limit(limit)
    )
    return list(session.scalars(query))


def voted_on(session: Session, user_id: str, request_ids: Collection[int]) -> set[int]:
    """Which of ``request_ids`` the person has already approved or rejected."""
    if not request_ids:
        return set()
    query = select(ApprovalRow.request_id).where(ApprovalRow.user_id == user_id, ApprovalRow.request_id.in_(sorted(request_ids)))
    return set(session.scalars(query))


def voters(session: Session, request_id: int) -> set[str]:
    """Everyone who approved or rejected a request (it is in their "last runs" on the home)."""
    return set(session.scalars(select(ApprovalRow.user_id).where(ApprovalRow.request_id == request_id)))


def touched_by(session: Session, user_id: str, limit: int) -> list[RequestRow]:
    """Ended requests the person asked for or decided on, most recently changed first."""
    decided = select(ApprovalRow.request_id).where(ApprovalRow.user_id == user_id)
    query = (
        select(RequestRow)
        .where(
            RequestRow.state.in_([str(state) for state in FINAL_STATES]),
            or_(RequestRow.requester_id == user_id, RequestRow.id.in_(decided)),
        )
        .order_by(RequestRow.updated_at.desc(), RequestRow.id.desc())
        .limit(limit)
    )
    return list(session.scalars(query))


def manual_locks(session: Session, now: datetime) -> list[TargetLockRow]:
    """Locks people took with ``/ops lock`` that have not ended (a run's own lock shows as that run)."""
    query = (
        select(TargetLockRow)
        .where(TargetLockRow.kind == "manual", TargetLockRow.expires_at > now)
        .order_by(TargetLockRow.service, TargetLockRow.env)
    )
    return list(session.scalars(query))


def _page(session: Session, where: tuple[object, ...], limit: int, *, order: object) -> tuple[list[RequestRow], int]:
    total = int(session.execute(select(func.count()).select_from(RequestRow).where(*where)).scalar_one())  # type: ignore[arg-type]
    rows = list(session.scalars(select(RequestRow).where(*where).order_by(order).limit(limit)))  # type: ignore[arg-type]
    return rows, total
