"""Anchors: the chain's head (seq, hash, time) published somewhere the database's writers cannot rewrite.

Why: the hash chain shows an edited or deleted row, but someone who can write the database can
delete the tail and move the head back, or rewrite a row and re-chain everything after it, and
the chain is consistent again. An anchor taken before that still names the old head; a later
chain must extend it (the same hash at the same seq). ``bot.audit.verification`` checks a chain
against any number of anchors; this module is their format.

One anchor is one JSON object, ``{"audit_anchor": {"seq": 41, "hash": "…", "at": "…Z"}}``, on
one line: the same text opsbot logs, posts to Slack and stores in S3, so anchors gathered from
any of those (a log search, a pasted Slack message, ``aws s3 cp``) can be handed to
``opsbot audit verify --anchors`` as they are. Lines of ``opsbot audit export`` (which carry
``seq`` and ``hash``) count as anchors too: an archived export anchors every row it holds.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.audit.chain import format_time

ANCHOR_FIELD = "audit_anchor"
_MARKER = '{"' + ANCHOR_FIELD + '"'
_DECODER = json.JSONDecoder()


@dataclass(frozen=True)
class Anchor:
    """The chain's head as it was at ``at``; ``source`` says where it was read (for the report)."""

    seq: int
    hash: str
    at: datetime
    source: str = ""

    def as_json(self) -> str:
        """The one-line form every sink publishes."""
        return json.dumps({ANCHOR_FIELD: self.fields()}, separators=(",", ":"))

    def fields(self) -> dict[str, Any]:
        return {"seq": self.seq, "hash": self.hash, "at": format_time(self.at)}

    def describe(self) -> str:
        where = f" ({self.source})" if self.source else ""
        return f"the anchor of {format_time(self.at)}{where}"


class AnchorFormatError(ValueError):
    """A line that claims to be an anchor but is not a valid one."""


def parse_anchors(lines: Iterable[str], *, source: str) -> list[Anchor]:
    """Every anchor in ``lines``: JSON log lines, pasted Slack messages, export lines; other lines are skipped.

    Raises ``AnchorFormatError`` naming the line for an object with ``audit_anchor`` (or an export
    line) whose fields are missing or malformed: a damaged anchor must not pass silently.
    """
    anchors: list[Anchor] = []
    for number, line in enumerate(lines, start=1):
        try:
            found = _anchor_object(line)
            if found is not None:
                anchors.append(anchor_from_fields(found, source=f"{source}:{number}"))
        except AnchorFormatError as error:
            raise AnchorFormatError(f"{source}:{number}: {error}") from None
    return anchors


def anchor_from_fields(fields: dict[str, Any], *, source: str) -> Anchor:
    """An ``Anchor`` from ``{"seq", "hash", "at"}``; ``AnchorFormatError`` says which field is wrong."""
    seq, digest, at = fields.get("seq"), fields.get("hash"), fields.get("at")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise AnchorFormatError(f"seq must be a whole number ≥ 0, not {seq!r}")
    if not isinstance(digest, str) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise AnchorFormatError(f"hash must be 64 lowercase hex digits, not {digest!r:.80}")
    if not isinstance(at, str):
        raise AnchorFormatError(f"at must be an ISO 8601 time, not {at!r}")
    try:
        moment = datetime.fromisoformat(at.replace("Z", "+00:00"))
    except ValueError:
        raise AnchorFormatError(f"at must be an ISO 8601 time, not {at!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return Anchor(seq=seq, hash=digest, at=moment.astimezone(UTC), source=source)


def _anchor_object(line: str) -> dict[str, Any] | None:
    """The anchor's fields in ``line``, wherever in the line the anchor object sits; None if it has none."""
    stripped = line.strip()
    if not stripped:
        return None
    if stripped.startswith("{"):
        try:
            whole = json.loads(stripped)
        except json.JSONDecodeError:
            whole = None
        if isinstance(whole, dict):
            if isinstance(whole.get(ANCHOR_FIELD), dict):
                return dict(whole[ANCHOR_FIELD])
            if "seq" in whole and "hash" in whole and "prev_hash" in whole:  # an `opsbot audit export` line
                return {"seq": whole["seq"], "hash": whole["hash"], "at": whole.get("at")}
            return None
    start = stripped.find(_MARKER)  # inside a Slack message or a log line of another format
    if start < 0:
        return None
    try:
        embedded, _end = _DECODER.raw_decode(stripped, start)
    except json.JSONDecodeError as error:
        raise AnchorFormatError(f"an anchor that is not valid JSON ({error.msg})") from None
    fields = embedded.get(ANCHOR_FIELD) if isinstance(embedded, dict) else None
    if not isinstance(fields, dict):
        raise AnchorFormatError("an anchor without its fields")
    return dict(fields)
