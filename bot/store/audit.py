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

from sqlalchemy import ColumnElement, Table, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from bot.audit.anchors import Anchor
from bot.audit.chain import GENESIS_HASH, ChainRow, canonical_json, chain_hash, format_time, key_id
from bot.audit.events import SYSTEM, AuditEvent, EventType
from bot.audit.verification import ChainHead, ChainReport, verify_chain
from bot.redaction import redact
from bot.store.database import AUDIT_KEY_INFO, Database
from bot.store.models import AuditEventRow, AuditHeadRow

HEAD_ID = 1
VERIFY_BATCH = 20_000

# Built once: appends are on every state change, and building SQLAlchemy statements per call
# cost more than the database round trips (see docs/benchmarks.md).
_AUDIT_TABLE: Table = AuditEventRow.__table__  # type: ignore[assignment]
_HEAD_TABLE: Table = AuditHeadRow.__table__  # type: ignore[assignment]
_READ_HEAD = select(AuditHeadRow.seq, AuditHeadRow.last_hash, AuditHeadRow.key_id).where(AuditHeadRow.id == HEAD_ID)
_LOCK_HEAD = _READ_HEAD.with_for_update()
_INSERT_EVENT = insert(_AUDIT_TABLE)
_MOVE_HEAD = update(_HEAD_TABLE).where(_HEAD_TABLE.c.id == HEAD_ID).values(seq=bindparam("new_seq"), last_hash=bindparam("new_hash"))


class AuditKeyMismatch(RuntimeError):
    """The chain is keyed with another key than this process's (or this process has none): appending would break it."""


def append_events(session: Session, events: Sequence[AuditEvent], now: datetime) -> list[int]:
    """Append ``events`` in order inside the caller's transaction; returns their seq numbers.

    Hashed with the database's audit key (``Database(audit_key=…)``) once the chain is keyed; a
    process whose key differs from the chain's refuses to append (the caller's change rolls back)
    rather than write rows nobody could verify.
    """
    if not events:
        return []
    connection = session.connection()
    head = connection.execute(_LOCK_HEAD).one_or_none()
    if head is None:
        raise RuntimeError("audit_head row is missing: run `opsbot db upgrade`")
    seq, prev_hash, head_key_id = head
    key = _chain_key(session.info.get(AUDIT_KEY_INFO), head_key_id)
    rows: list[dict[str, object]] = []
    for event in events:
        seq += 1
        row = _row_values(seq, event, now, prev_hash, key)
        prev_hash = str(row["hash"])
        rows.append(row)
    connection.execute(_INSERT_EVENT, rows)
    connection.execute(_MOVE_HEAD, {"new_seq": seq, "new_hash": prev_hash})
    return [int(str(row["seq"])) for row in rows]


def introduce_key(session: Session, key: bytes, now: datetime) -> int | None:
    """Key the chain from now on: append an ``audit_key_introduced`` row (itself keyed) and record the key in the head.

    Idempotent: None if the chain is already keyed with ``key``; ``AuditKeyMismatch`` if with another.
    Rows before the introduction keep their plain hashes, so an existing log stays verifiable.
    """
    connection = session.connection()
    head = connection.execute(_LOCK_HEAD).one_or_none()
    if head is None:
        raise RuntimeError("audit_head row is missing: run `opsbot db upgrade`")
    seq, prev_hash, head_key_id = head
    wanted = key_id(key)
    if head_key_id == wanted:
        return None
    if head_key_id is not None:
        raise AuditKeyMismatch(f"the audit chain is keyed with key id {head_key_id}, OPSBOT_AUDIT_KEY is key id {wanted}")
    event = AuditEvent(EventType.AUDIT_KEY_INTRODUCED, actor_id=SYSTEM.user_id, actor_name=SYSTEM.name, details={"key_id": wanted})
    row = _row_values(seq + 1, event, now, prev_hash, key)
    connection.execute(_INSERT_EVENT, [row])
    connection.execute(update(_HEAD_TABLE).where(_HEAD_TABLE.c.id == HEAD_ID).values(seq=seq + 1, last_hash=row["hash"], key_id=wanted))
    return seq + 1


def read_head(session: Session) -> ChainHead | None:
    """The head as it stands (None if its row is missing): what an anchor publishes."""
    head = session.connection().execute(_READ_HEAD).one_or_none()
    return None if head is None else ChainHead(seq=int(head[0]), hash=str(head[1]), key_id=head[2])


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


def verify(database: Database, *, key: bytes | None = None, anchors: Sequence[Anchor] = ()) -> ChainReport:
    """Check the whole chain (with ``key`` where it is keyed) against its head and ``anchors``, streaming rows; reads never block writers.

    The database formats each timestamp into the hashed text form itself (in C), and rows
    come through SQLAlchemy Core, not the ORM: 1 M rows verify in seconds, not minutes.
    """
    table = _AUDIT_TABLE.c
    columns = (
        table.seq, _time_text(database), table.event, table.actor_id, table.actor_name, table.channel, table.request_id,
        table.runbook, table.service, table.env, table.params, table.outcome, table.details, table.prev_hash, table.hash,
    )  # fmt: skip
    with database.reading() as session:
        head = read_head(session)
        result = session.connection().execution_options(yield_per=VERIFY_BATCH).execute(select(*columns).order_by(table.seq))
        rows: Iterator[ChainRow] = iter(result)
        return verify_chain(rows, head, key=key, anchors=anchors)


def _time_text(database: Database) -> ColumnElement[str]:
    """SQL that renders ``at`` exactly as ``format_time`` does."""
    if database.is_postgresql:
        return func.to_char(func.timezone("UTC", _AUDIT_TABLE.c.at), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
    # SQLAlchemy stores SQLite datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC, see UtcDateTime): that text, read as is.
    return func.replace(_AUDIT_TABLE.c.at, " ", "T") + "Z"


def count_events(session: Session) -> int:
    head = session.execute(select(AuditHeadRow.seq).where(AuditHeadRow.id == HEAD_ID)).scalar_one_or_none()
    return int(head or 0)


def _chain_key(own: bytes | None, head_key_id: str | None) -> bytes | None:
    """The key to hash new rows with: none until the chain is keyed, then exactly the chain's key."""
    if head_key_id is None:
        return None
    if own is None:
        raise AuditKeyMismatch(f"the audit chain is keyed (key id {head_key_id}) but OPSBOT_AUDIT_KEY is not set in this process")
    if key_id(own) != head_key_id:
        raise AuditKeyMismatch(f"the audit chain is keyed with key id {head_key_id}, OPSBOT_AUDIT_KEY is key id {key_id(own)}")
    return own


def _row_values(seq: int, event: AuditEvent, now: datetime, prev_hash: str, key: bytes | None) -> dict[str, object]:
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
        "hash": chain_hash(fields, prev_hash, key),
    }


__all__ = [
    "GENESIS_HASH", "AuditKeyMismatch", "append_events", "count_events", "events_between", "events_since", "introduce_key", "read_head",
    "tail", "verify",
]  # fmt: skip
