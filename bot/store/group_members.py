"""SQL for the shared Slack user group cache: one row per group, replaced on each fetch, deleted on a change event."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.orm import Session

from bot.store.models import GroupMembersRow


def read(session: Session, group_id: str) -> tuple[frozenset[str], datetime] | None:
    """The members last fetched for ``group_id`` and when, or None if nobody has (or it was invalidated)."""
    row = session.get(GroupMembersRow, group_id)
    return None if row is None else (frozenset(row.members), row.fetched_at)


def write(session: Session, group_id: str, members: frozenset[str], fetched_at: datetime) -> None:
    """Store what Slack answered (a newer answer replaces an older one)."""
    row = session.get(GroupMembersRow, group_id)
    if row is None:
        session.add(GroupMembersRow(group_id=group_id, members=sorted(members), fetched_at=fetched_at))
    elif row.fetched_at <= fetched_at:
        row.members, row.fetched_at = sorted(members), fetched_at
    session.flush()


def forget(session: Session, group_id: str | None = None) -> int:
    """Drop one group's answer (a ``subteam_members_changed`` event), or every group's (None)."""
    statement = delete(GroupMembersRow)
    if group_id is not None:
        statement = statement.where(GroupMembersRow.group_id == group_id)
    return int(session.execute(statement).rowcount or 0)  # type: ignore[attr-defined]
