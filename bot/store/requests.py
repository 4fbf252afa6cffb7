"""SQL for requests and approvals. Every state change is one conditional UPDATE.

``transition`` returns False when the row was not in an expected state, which is how a
double click, a second approver or a late expiry sweep loses the race cleanly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bot.store.inserts import insert_new
from bot.store.models import ApprovalRow, RequestRow
from bot.store.states import RequestState


def create_request(session: Session, **values: Any) -> RequestRow:
    """Insert a request; ``values`` are RequestRow columns. Returns it with its id."""
    row = RequestRow(**values)
    session.add(row)
    session.flush()
    return row


def get_request(session: Session, request_id: int) -> RequestRow | None:
    return session.get(RequestRow, request_id, populate_existing=True)


def transition(
    session: Session, request_id: int, *, expected: Iterable[RequestState], new: RequestState, now: datetime, **values: Any
) -> bool:
    """Move ``request_id`` to ``new`` only if it is in one of ``expected``; True if it moved."""
    states = [str(state) for state in expected]
    result = session.execute(
        update(RequestRow)
        .where(RequestRow.id == request_id, RequestRow.state.in_(states))
        .values(state=str(new), updated_at=now, **values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def set_fields(session: Session, request_id: int, now: datetime, **values: Any) -> None:
    """Update non-state columns (message reference, lease) without a state condition."""
    session.execute(
        update(RequestRow).where(RequestRow.id == request_id).values(updated_at=now, **values).execution_options(synchronize_session=False)
    )


def record_vote(
    session: Session, *, request_id: int, user_id: str, user_name: str, decision: str, params_hash: str, plan_hash: str, now: datetime
) -> bool:
    """Insert one person's vote; False if they already voted (unique per request and person)."""
    vote = {
        "request_id": request_id, "user_id": user_id, "user_name": user_name, "decision": decision, "params_hash": params_hash,
        "plan_hash": plan_hash, "created_at": now,
    }  # fmt: skip
    return insert_new(session, ApprovalRow, vote, key=["request_id", "user_id"])


def valid_approvals(session: Session, request_id: int, params_hash: str, plan_hash: str) -> list[ApprovalRow]:
    """Approvals given for exactly these parameters and this plan."""
    query = select(ApprovalRow).where(
        ApprovalRow.request_id == request_id,
        ApprovalRow.decision == "approve",
        ApprovalRow.params_hash == params_hash,
        ApprovalRow.plan_hash == plan_hash,
    )
    return list(session.scalars(query.order_by(ApprovalRow.id)))


def votes(session: Session, request_id: int) -> list[ApprovalRow]:
    return list(session.scalars(select(ApprovalRow).where(ApprovalRow.request_id == request_id).order_by(ApprovalRow.id)))


def list_requests(
    session: Session,
    *,
    states: Sequence[RequestState] | None = None,
    service: str | None = None,
    env: str | None = None,
    limit: int = 20,
) -> list[RequestRow]:
    """Newest first."""
    query = select(RequestRow).order_by(RequestRow.id.desc()).limit(limit)
    if states is not None:
        query = query.where(RequestRow.state.in_([str(state) for state in states]))
    if service is not None:
        query = query.where(RequestRow.service == service)
    if env is not None:
        query = query.where(RequestRow.env == env)
    return list(session.scalars(query))


def due_for_expiry(session: Session, now: datetime) -> list[int]:
    """Ids of pending requests whose approval window has closed."""
    query = select(RequestRow.id).where(
        RequestRow.state == str(RequestState.PENDING_APPROVAL), RequestRow.expires_at.is_not(None), RequestRow.expires_at <= now
    )
    return list(session.scalars(query))


def abandoned_runs(session: Session, now: datetime) -> list[int]:
    """Running requests whose runner stopped renewing its lease (the process died)."""
    query = select(RequestRow.id).where(
        RequestRow.state == str(RequestState.RUNNING), RequestRow.lease_expires_at.is_not(None), RequestRow.lease_expires_at < now
    )
    return list(session.scalars(query))


def approved_waiting(session: Session, older_than: datetime) -> list[int]:
    """Approved requests no runner picked up (the approving process died before starting it)."""
    query = select(RequestRow.id).where(RequestRow.state == str(RequestState.APPROVED), RequestRow.updated_at < older_than)
    return list(session.scalars(query))


def renew_lease(session: Session, request_id: int, runner_id: str, until: datetime) -> bool:
    """Extend our lease; False if the run is no longer ours or no longer running."""
    result = session.execute(
        update(RequestRow)
        .where(RequestRow.id == request_id, RequestRow.runner_id == runner_id, RequestRow.state == str(RequestState.RUNNING))
        .values(lease_expires_at=until)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def cancel_requested(session: Session, request_id: int) -> bool:
    value = session.execute(select(RequestRow.cancel_requested).where(RequestRow.id == request_id)).scalar_one_or_none()
    return bool(value)


def count_by_state(session: Session) -> dict[str, int]:
    rows = session.execute(select(RequestRow.state, func.count()).group_by(RequestRow.state)).all()
    return {state: int(count) for state, count in rows}
