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

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from bot.audit.chain import GENESIS_HASH, ChainReport, ChainRow, canonical_json, chain_hash, format_time, verify_chain
from bot.audit.events import AuditEvent, redact
from bot.store.database import Database
from bot.store.models import AuditEventRow, AuditHeadRow

HEAD_ID = 1
VERIFY_BATCH = 20_000


def append_events(session: Session, events: Sequence[AuditEvent], now: datetime) -> list[int]:
    """Append ``events`` in order inside the caller's transaction; returns their seq numbers."""
    if not events:
        return []
    head = session.execute(
        select(AuditHeadRow.seq, AuditHeadRow.last_hash).where(AuditHeadRow.id == HEAD_ID).with_for_update()
    ).one_or_none()
    if head is None:
        raise RuntimeError("audit_head row is missing: run `opsbot db upgrade`")
    seq, prev_hash = head
    rows: list[dict[str, object]] = []
    for event in events:
        seq += 1
        row = _row_values(seq, event, now, prev_hash)
        prev_hash = str(row["hash"])
        rows.append(row)
    session.execute(insert(AuditEventRow), rows)
    session.execute(update(AuditHeadRow).where(AuditHeadRow.id == HEAD_ID).values(seq=seq, last_hash=prev_hash))
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
    """Check the whole chain, streaming rows; reads never block writers."""
    columns = (
        AuditEventRow.seq, AuditEventRow.at, AuditEventRow.event, AuditEventRow.actor_id, AuditEventRow.actor_name,
        AuditEventRow.channel, AuditEventRow.request_id, AuditEventRow.runbook, AuditEventRow.service,
        AuditEventRow.env, AuditEventRow.params, AuditEventRow.outcome, AuditEventRow.details,
        AuditEventRow.prev_hash, AuditEventRow.hash,
    )  # fmt: skip
    with database.reading() as session:
        head = session.execute(select(AuditHeadRow.seq, AuditHeadRow.last_hash).where(AuditHeadRow.id == HEAD_ID)).one_or_none()
        result = session.execute(select(*columns).order_by(AuditEventRow.seq).execution_options(yield_per=VERIFY_BATCH))
        rows: Iterator[ChainRow] = (tuple(row) for row in result)  # type: ignore[misc]
        head_seq, head_hash = (head[0], head[1]) if head is not None else (None, None)
        return verify_chain(rows, head_seq, head_hash if head_seq else None)


def count_events(session: Session) -> int:
    head = session.execute(select(AuditHeadRow.seq).where(AuditHeadRow.id == HEAD_ID)).scalar_one_or_none()
    return int(head or 0)


def _row_values(seq: int, event: AuditEvent, now: datetime, prev_hash: str) -> dict[str, object]:
    params = canonical_json(redact(event.params))
    details = canonical_json(redact(event.details))
    fields = (
        seq, format_time(now), str(event.event), event.actor_id, event.actor_name, event.channel, event.request_id,
        event.runbook, event.service, event.env, params, event.outcome, details,
    )  # fmt: skip
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
