"""The hash chain, as pure functions over plain rows.

Each row's hash is SHA-256 over a canonical JSON array of its fields and the previous
row's hash; ``seq`` is gap-free. Editing a row breaks its hash, deleting one breaks the
sequence and the link, inserting one breaks the link, and truncating the tail disagrees
with the head row. Someone who can rewrite every later row and the head can still forge
a consistent chain; two things close that gap (docs/audit-log.md):

- a **key**: from its key-introduction row on, a chain's hashes are HMAC-SHA256 with a key
  the database never holds (``OPSBOT_AUDIT_KEY``), so re-chaining needs the key;
- **anchors** (``bot.audit.anchors``): the head published outside the database, which a
  later chain must extend.

Checking a chain against its head, its key and its anchors is ``bot.audit.verification``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from bot.audit.events import EventType

GENESIS_HASH = "0" * 64
KEY_INTRODUCED = str(EventType.AUDIT_KEY_INTRODUCED)
"""The event of the row from which on the chain is keyed; its details carry the key's ``key_id``."""

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


def chain_hash(fields: Sequence[Any], prev_hash: str, key: bytes | None = None) -> str:
    """SHA-256 (or, with ``key``, HMAC-SHA256) of the canonical array ``[*fields, prev_hash]``; ``fields`` excludes the hashes."""
    payload = _ARRAY_ENCODER.encode([*fields, prev_hash]).encode("utf-8")
    if key is None:
        return hashlib.sha256(payload).hexdigest()
    return hmac.new(key, payload, hashlib.sha256).hexdigest()


def key_id(key: bytes) -> str:
    """A public name for a key (it reveals nothing of it): which key a chain is keyed with, stored in the head."""
    return hmac.new(key, b"opsbot audit key id", hashlib.sha256).hexdigest()[:16]
