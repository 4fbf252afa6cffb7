"""The hash chain, as pure functions over plain rows.

Each row's hash is SHA-256 over a canonical JSON array of its fields and the previous
row's hash; ``seq`` is gap-free. Editing a row breaks its hash, deleting one breaks the
sequence and the link, inserting one breaks the link, and truncating the tail disagrees
with the head row. (Someone who can rewrite every later row and the head can still forge
a consistent chain: export the head hash elsewhere to anchor it; see docs/audit-log.md.)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS_HASH = "0" * 64

ChainRow = Sequence[Any]
"""(seq, at_text, event, actor_id, actor_name, channel, request_id, runbook, service, env,
params_json, outcome, details_json, prev_hash, hash) — the column order of ``audit_events``,
with the time already in ``format_time``'s text form (the store reads it that way)."""

_ARRAY_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def canonical_json(value: Any) -> str:
    """The one JSON text used for hashing and storage: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def format_time(value: datetime) -> str:
    """UTC with microseconds, ``2026-11-25T12:00:00.000000Z``: the same from SQLite or PostgreSQL."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")[:26] + "Z"


def chain_hash(fields: Sequence[Any], prev_hash: str) -> str:
    """SHA-256 of the canonical array ``[*fields, prev_hash]``; ``fields`` excludes the hashes."""
    payload = _ARRAY_ENCODER.encode([*fields, prev_hash])
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ChainBreak:
    """The first row where the chain does not hold, and why."""

    seq: int
    reason: str

    def __str__(self) -> str:
        return f"audit row seq={self.seq}: {self.reason}"


@dataclass(frozen=True)
class ChainReport:
    """How many rows were checked and the first break, if any."""

    rows: int
    last_seq: int
    last_hash: str
    broken: ChainBreak | None


def verify_chain(rows: Iterable[ChainRow], head_seq: int | None, head_hash: str | None) -> ChainReport:
    """Walk rows in ``seq`` order and return the first break (or none)."""
    expected_seq, expected_prev, count = 1, GENESIS_HASH, 0
    for row in rows:
        count += 1
        seq, prev_hash, stored_hash = row[0], row[13], row[14]
        if seq != expected_seq:
            if seq > expected_seq:
                reason = f"rows {expected_seq}..{seq - 1} are missing (deleted?)"
            else:
                reason = f"sequence goes back from {expected_seq - 1} to {seq}"
            return ChainReport(count, seq, stored_hash, ChainBreak(seq, reason))
        if prev_hash != expected_prev:
            reason = "prev_hash does not match the hash of the row before it (a row was inserted, removed or replaced)"
            return ChainReport(count, seq, stored_hash, ChainBreak(seq, reason))
        if chain_hash(row[:13], prev_hash) != stored_hash:
            reason = "content does not match its hash (the row was edited)"
            return ChainReport(count, seq, stored_hash, ChainBreak(seq, reason))
        expected_seq, expected_prev = seq + 1, stored_hash
    last_seq = expected_seq - 1
    if head_seq is not None and head_seq != last_seq:
        if head_seq > last_seq:
            reason = f"the head says the chain ends at seq {head_seq}, but the last row is {last_seq} (rows deleted from the end?)"
            return ChainReport(count, last_seq, expected_prev, ChainBreak(last_seq + 1, reason))
        reason = f"rows after seq {head_seq} were not written through opsbot (the head ends there)"
        return ChainReport(count, last_seq, expected_prev, ChainBreak(head_seq + 1, reason))
    if head_hash is not None and last_seq > 0 and head_hash != expected_prev:
        return ChainReport(count, last_seq, expected_prev, ChainBreak(last_seq, "the last row does not match the head's hash"))
    return ChainReport(count, last_seq, expected_prev, None)
