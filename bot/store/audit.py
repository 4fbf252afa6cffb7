"""SQL for the audit log: append (chained, serialized on the head row), read, verify.

Why serialize on a row, not a Python lock: several processes (replicas) append, and the
chain must have one order across all of them. ``SELECT … FOR UPDATE`` on PostgreSQL and
``BEGIN IMMEDIATE`` on SQLite make the database the single writer of the tip. Append is
always the last write of a transaction, so the head lock is the last one taken (no
deadlocks with request rows) and held only until commit.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, String, Table, bindparam, func, insert, select, type_coerce, update
from sqlalchemy.orm import Session

from bot.audit.chain import GENESIS_HASH, ChainReport, ChainRow, canonical_json, chain_hash, format_time, verify_chain
from bot.audit.events import AuditEvent
from bot.redaction import redact
from bot.store.database import Database
from bot.store.models import AuditEventRow, AuditHeadRow

HEAD_ID = 1
VERIFY_BATCH = 20_000

# Built once: appends are on every state change, and building SQLAlchemy statements per call
# cost more than the database round trips (see docs/benchmarks.md).
_AUDIT_TABLE: Table = AuditEventRow.__table__  # type: ignore[assignment]
_HEAD_TABLE: Table = AuditHeadRow.__table__  # type: ignore[assignment]
_LOCK_HEAD = select(AuditHeadRow.seq, AuditHeadRow.last_hash).where(AuditHeadRow.id == HEAD_ID).with_for_update()
_INSERT_EVENT = insert(_AUDIT_TABLE)
_MOVE_HEAD = update(_HEAD_TABLE).where(_HEAD_TABLE.c.id == HEAD_ID).values(seq=bindparam("new_seq"), last_hash=bindparam("new_hash"))


def append_events(session: Session, events: Sequence[AuditEvent], now: datetime) -> list[int]:
    """Append ``events`` in order inside the caller's transaction; returns their seq numbers."""
    if not events:
        return []
    connection = session.connection()
    head = connection.execute(_LOCK_HEAD).one_or_none()
    if head is None:
        raise RuntimeError("audit_head row is missing: run `opsbot db upgrade`")
    seq, prev_hash = head
    rows: list[dict[str, object]] = []
    for event in events:
        seq += 1
        row = _row_values(seq, event, now, prev_hash)
        prev_hash = str(row["hash"])
        rows.append(row)
    connection.execute(_INSERT_EVENT, rows)
    connection.execute(_MOVE_HEAD, {"new_seq": seq, "new_hash": prev_hash})
    return [int(str(row["seq"])) for row in rows]


def tail(session: Session, *, limit: int = 20, service: str | None = None, request_id: int | None = None) -> list[AuditEventRow]:
    """The newest events (optionally of one service or request), newest last."""
    query = select(AuditEventRow).order_by(AuditEventRow.seq.desc()).limit(limit)
    if service is not None:
        query = query.where(AuditEventRow.service == service)
    if request_id is not None:
        query = query.where(AuditEventRow.request_id == request_id)
    return list(reversed(session.scalars(query).all()))


def events_between(
    session: Session, *, since: datetime | None = None, until: datetime | None = None, batch: int = 5_000
) -> Iterator[AuditEventRow]:
    """Events in chain order within [since, until), streamed in batches for export."""
    query = select(AuditEventRow).order_by(AuditEventRow.seq)
    if since is not None:
        query = query.where(AuditEventRow.at >= since)
    if until is not None:
        query = query.where(AuditEventRow.at < until)
    yield from session.scalars(query.execution_options(yield_per=batch))


def events_since(session: Session, since: datetime, services: Sequence[str] | None = None) -> list[AuditEventRow]:
    """Events after ``since`` (for digests), oldest first."""
    query = select(AuditEventRow).where(AuditEventRow.at > since).order_by(AuditEventRow.seq)
    if services is not None:
        query = query.where(AuditEventRow.service.in_(list(services)))
    return list(session.scalars(query))


def verify(database: Database) -> ChainReport:
    """Check the whole chain, streaming rows; reads never block writers.

    The database formats each timestamp into the hashed text form itself (in C), and rows
    come through SQLAlchemy Core, not the ORM: 1 M rows verify in seconds, not minutes.
    """
    table = _AUDIT_TABLE.c
    columns = (
        table.seq, _time_text(database), table.event, table.actor_id, table.actor_name, table.channel, table.request_id,
        table.runbook, table.service, table.env, table.params, table.outcome, table.details, table.prev_hash, table.hash,
    )  # fmt: skip
    with database.reading() as session:
        connection = session.connection()
        head = connection.execute(select(AuditHeadRow.seq, AuditHeadRow.last_hash).where(AuditHeadRow.id == HEAD_ID)).one_or_none()
        result = connection.execution_options(yield_per=VERIFY_BATCH).execute(select(*columns).order_by(table.seq))
        rows: Iterator[ChainRow] = iter(result)
        head_seq, head_hash = (head[0], head[1]) if head is not None else (None, None)
        return verify_chain(rows, head_seq, head_hash if head_seq else None)


def _time_text(database: Database) -> ColumnElement[str]:
    """SQL that renders ``at`` exactly as ``format_time`` does."""
    if database.is_postgresql:
        return func.to_char(func.timezone("UTC", _AUDIT_TABLE.c.at), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
    # SQLAlchemy stores SQLite datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC, see UtcDateTime).
    return func.replace(type_coerce(_AUDIT_TABLE.c.at, String), " ", "T") + "Z"


def count_events(session: Session) -> int:
    head = session.execute(select(AuditHeadRow.seq).where(AuditHeadRow.id == HEAD_ID)).scalar_one_or_none()
    return int(head or 0)


def _row_values(seq: int, event: AuditEvent, now: datetime, prev_hash: str) -> dict[str, object]:
    params = canonical_json(redact(event.params))
    details = canonical_json(redact(event.details))
    fields = (
        seq,
        format_time(now),
        str(event.event),
        event.actor_id,
        event.actor_name,
        event.channel,
        event.request_id,
        event.runbook,
        event.service,
        event.env,
        params,
        event.outcome,
        details,
    )  # fmt: skip  (the order of ChainRow)
    return {
        "seq": seq,
        "at": now,
        "event": str(event.event),
        "actor_id": event.actor_id,
        "actor_name": event.actor_name,
        "channel": event.channel,
        "request_id": event.request_id,
        "runbook": event.runbook,
        "service": event.service,
        "env": event.env,
        "params": params,
        "outcome": event.outcome,
        "details": details,
        "prev_hash": prev_hash,
        "hash": chain_hash(fields, prev_hash),
    }


__all__ = ["GENESIS_HASH", "append_events", "count_events", "events_between", "events_since", "tail", "verify"]
