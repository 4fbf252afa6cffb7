"""SQL for scheduled jobs: who ran which slot (``job_slots``) and what a digest last showed (``digest_state``).

Why an INSERT is the claim: the primary key (job_id, slot) lets exactly one replica's row
in, on SQLite (``BEGIN IMMEDIATE`` serializes writers) and on PostgreSQL (a concurrent
``INSERT … ON CONFLICT DO NOTHING`` waits for the first and then inserts nothing). The row
stays after the run, so a replica that restarts inside the same slot, or APScheduler firing
the same slot twice (a DST fall-back hour), finds it and does not run the job again. A
claim whose owner died before finishing keeps ``finished_at`` NULL: the slot is lost
rather than run twice — a digest is better missed than doubled, and the next slot comes.

``digest_state`` lives here too because it is the memory a scheduled job keeps between
its slots: what the last digest to a channel showed, for ``quiet`` digests.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.store.models import DigestStateRow, JobSlotRow

OUTCOME_LENGTH = 40
"""``job_slots.outcome`` is String(40): longer outcomes are cut, they are a label, not a log."""


def claim(session: Session, *, job_id: str, slot: str, owner: str, now: datetime) -> bool:
    """Claim (job_id, slot) for ``owner``; True if this call inserted the row, False if it was taken."""
    values = {"job_id": job_id, "slot": slot, "owner": owner, "claimed_at": now}
    dialect = session.get_bind().dialect.name
    if dialect in ("postgresql", "sqlite"):
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = insert(JobSlotRow).values(**values).on_conflict_do_nothing(index_elements=["job_id", "slot"])
        # RETURNING, not rowcount: psycopg reports -1 for an ORM-level INSERT … ON CONFLICT.
        return session.execute(statement.returning(JobSlotRow.job_id)).first() is not None
    try:
        with session.begin_nested():
            session.add(JobSlotRow(**values))
            session.flush()
    except IntegrityError:
        return False
    return True


def finish(session: Session, *, job_id: str, slot: str, owner: str, outcome: str, now: datetime) -> bool:
    """Record how our claimed run ended; False if the claim is not ours or was already finished."""
    result = session.execute(
        update(JobSlotRow)
        .where(JobSlotRow.job_id == job_id, JobSlotRow.slot == slot, JobSlotRow.owner == owner, JobSlotRow.finished_at.is_(None))
        .values(finished_at=now, outcome=outcome[:OUTCOME_LENGTH])
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def get_slot(session: Session, *, job_id: str, slot: str) -> JobSlotRow | None:
    return session.get(JobSlotRow, (job_id, slot), populate_existing=True)


def slots_of(session: Session, job_id: str, *, limit: int = 100) -> list[JobSlotRow]:
    """The newest claims of a job, oldest first (for status pages and tests)."""
    query = select(JobSlotRow).where(JobSlotRow.job_id == job_id).order_by(JobSlotRow.claimed_at.desc(), JobSlotRow.slot.desc())
    return list(reversed(session.scalars(query.limit(limit)).all()))


def prune(session: Session, *, before: datetime) -> int:
    """Delete claims made before ``before``; returns how many went.

    Safe because a slot is only ever claimed within its misfire grace: a claim older than
    any grace can no longer stop a duplicate, it is history.
    """
    result = session.execute(delete(JobSlotRow).where(JobSlotRow.claimed_at < before).execution_options(synchronize_session=False))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# -- digest_state -----------------------------------------------------------------------


def digest_state(session: Session, channel: str) -> DigestStateRow | None:
    """What the last digest posted to ``channel`` showed (None: never posted)."""
    return session.get(DigestStateRow, channel, populate_existing=True)


def record_digest(session: Session, *, channel: str, posted_at: datetime, fingerprint: str) -> None:
    """Remember a posted digest (insert or overwrite the channel's row)."""
    values = {"channel": channel, "last_posted_at": posted_at, "last_fingerprint": fingerprint}
    dialect = session.get_bind().dialect.name
    if dialect in ("postgresql", "sqlite"):
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = insert(DigestStateRow).values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=["channel"], set_={"last_posted_at": posted_at, "last_fingerprint": fingerprint}
        )
        session.execute(statement)
        return
    row = session.get(DigestStateRow, channel)
    if row is None:
        session.add(DigestStateRow(**values))
    else:
        row.last_posted_at, row.last_fingerprint = posted_at, fingerprint
    session.flush()
