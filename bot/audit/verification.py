"""Checking a chain: its own links, its head row, its key, and every anchor taken of it.

One pass over the rows in ``seq`` order (a million rows stream through it), pure: the rows,
the head and the anchors come from the caller (``bot.store.audit.verify``). What each finding
means and what it cannot show is in docs/audit-log.md.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from bot.audit.anchors import Anchor
from bot.audit.chain import GENESIS_HASH, KEY_INTRODUCED, ChainRow, chain_hash, format_time, key_id

BACKDATING_TOLERANCE = timedelta(minutes=5)
"""How much earlier than an anchor a row after it may be dated: a transaction takes its time
before it takes the head lock, and replicas' clocks differ a little. A row dated earlier than
that was written after the anchor and given an older time."""


@dataclass(frozen=True)
class ChainHead:
    """The ``audit_head`` row: where the chain ends, and the key it is hashed with (if any)."""

    seq: int
    hash: str
    key_id: str | None = None


@dataclass(frozen=True)
class ChainBreak:
    """A place where the chain does not hold, and why."""

    seq: int
    reason: str

    def __str__(self) -> str:
        return f"audit row seq={self.seq}: {self.reason}"


@dataclass(frozen=True)
class ChainReport:
    """What was checked, and every problem found (the first one is where to start)."""

    rows: int
    last_seq: int
    last_hash: str
    problems: tuple[ChainBreak, ...] = ()
    anchors_checked: int = 0
    keyed_from: int | None = None

    @property
    def broken(self) -> ChainBreak | None:
        return self.problems[0] if self.problems else None


def verify_chain(
    rows: Iterable[ChainRow], head: ChainHead | None, *, key: bytes | None = None, anchors: Sequence[Anchor] = ()
) -> ChainReport:
    """Walk ``rows`` in ``seq`` order; then hold the end of the chain against ``head`` and ``anchors``."""
    walk = _Walk(key, anchors)
    for row in rows:
        if not walk.step(row):
            break
    problems = list(walk.problems)
    if walk.intact:
        problems += _head_problems(head, walk, key)
        problems += _truncation(walk)
    return ChainReport(
        rows=walk.count,
        last_seq=walk.last_seq,
        last_hash=walk.last_hash,
        problems=tuple(problems),
        anchors_checked=len(anchors),
        keyed_from=walk.keyed_from,
    )


@dataclass
class _Walk:
    """The state of one pass: where the chain is, whether it is keyed, which anchors it has met."""

    key: bytes | None
    anchors: Sequence[Anchor]
    count: int = 0
    last_seq: int = 0
    last_hash: str = GENESIS_HASH
    keyed_from: int | None = None
    intact: bool = True
    problems: list[ChainBreak] = field(default_factory=list)
    agreed_up_to: int = 0
    """The highest seq an anchor confirmed (0: the empty chain, which every chain extends)."""
    anchor_disagreed: bool = False
    _by_seq: dict[int, list[Anchor]] = field(default_factory=dict)
    _by_time: list[Anchor] = field(default_factory=list)
    _next_dated: int = 0
    _dated_before: str | None = None
    _dating_anchor: Anchor | None = None

    def __post_init__(self) -> None:
        for anchor in self.anchors:
            self._by_seq.setdefault(anchor.seq, []).append(anchor)
        self._by_time = sorted(self.anchors, key=lambda anchor: anchor.seq)
        self._check_anchors(0, GENESIS_HASH)

    def step(self, row: ChainRow) -> bool:
        """Check one row; False once the chain itself is broken (later rows prove nothing)."""
        self.count += 1
        seq, at_text, event, prev_hash, stored_hash = row[0], row[1], row[2], row[13], row[14]
        expected_seq = self.last_seq + 1
        if seq != expected_seq:
            if seq > expected_seq:
                return self._broken(seq, f"rows {expected_seq}..{seq - 1} are missing (deleted?)")
            return self._broken(seq, f"sequence goes back from {expected_seq - 1} to {seq}")
        if prev_hash != self.last_hash:
            return self._broken(seq, "prev_hash does not match the hash of the row before it (a row was inserted, removed or replaced)")
        if event == KEY_INTRODUCED and not self._introduce_key(seq, row[12]):
            return False
        key = self.key if self.keyed_from is not None else None
        if chain_hash(row[:13], prev_hash, key) != stored_hash:
            if key is not None:
                return self._broken(seq, "content does not match its keyed hash (edited, or re-chained without the key)")
            return self._broken(seq, "content does not match its hash (the row was edited)")
        self._check_dating(seq, at_text)
        self.last_seq, self.last_hash = seq, stored_hash
        self._check_anchors(seq, stored_hash)
        return True

    def _introduce_key(self, seq: int, details_json: str) -> bool:
        if self.keyed_from is not None:
            return self._broken(seq, f"a second key introduction (the chain is keyed since seq {self.keyed_from}; keys are not rotated)")
        if self.key is None:
            return self._broken(seq, "from this row on the chain is keyed (HMAC): verify it with OPSBOT_AUDIT_KEY (or _FILE) set")
        try:
            introduced = json.loads(details_json).get("key_id")
        except (ValueError, AttributeError):
            introduced = None
        if introduced != key_id(self.key):
            return self._broken(seq, f"the chain is keyed with key id {introduced}, OPSBOT_AUDIT_KEY is key id {key_id(self.key)}")
        self.keyed_from = seq
        return True

    def _check_anchors(self, seq: int, stored_hash: str) -> None:
        for anchor in self._by_seq.get(seq, ()):
            if anchor.hash == stored_hash:
                self.agreed_up_to = max(self.agreed_up_to, seq)
            elif not self.anchor_disagreed:
                self.anchor_disagreed = True
                self.problems.append(ChainBreak(seq, _rechained(anchor, stored_hash, self.agreed_up_to)))

    def _check_dating(self, seq: int, at_text: str) -> None:
        """A row after an anchor must not be dated (much) before it: else it was written later and back-dated."""
        while self._next_dated < len(self._by_time) and self._by_time[self._next_dated].seq < seq:
            anchor = self._by_time[self._next_dated]
            threshold = format_time(anchor.at - BACKDATING_TOLERANCE)
            if self._dated_before is None or threshold > self._dated_before:
                self._dated_before, self._dating_anchor = threshold, anchor
            self._next_dated += 1
        if self._dated_before is not None and self._dating_anchor is not None and at_text < self._dated_before:
            anchor = self._dating_anchor
            self.problems.append(
                ChainBreak(
                    seq,
                    f"dated {at_text}, before {anchor.describe()}, which saw the chain end at seq {anchor.seq}: "
                    "this row was written after that anchor and back-dated (forged?)",
                )
            )
            self._dated_before = None  # one such finding is enough to start from

    def _broken(self, seq: int, reason: str) -> bool:
        self.intact = False
        self.problems.append(ChainBreak(seq, reason))
        return False


def _rechained(anchor: Anchor, stored_hash: str, agreed_up_to: int) -> str:
    where = f"at seq {anchor.seq}" if agreed_up_to == anchor.seq - 1 else f"between seq {agreed_up_to + 1} and {anchor.seq}"
    confirmed = f"the chain still agrees with the anchors up to seq {agreed_up_to}" if agreed_up_to else "no earlier anchor agrees"
    return (
        f"{anchor.describe()} has hash {anchor.hash[:16]}… here, the database {stored_hash[:16]}…: the chain was rewritten and "
        f"re-chained; the stories part {where} ({confirmed})"
    )


def _truncation(walk: _Walk) -> list[ChainBreak]:
    beyond = [anchor for anchor in walk.anchors if anchor.seq > walk.last_seq]
    if not beyond or walk.anchor_disagreed:
        return []
    furthest = max(beyond, key=lambda anchor: anchor.seq)
    return [
        ChainBreak(
            walk.last_seq + 1,
            f"{furthest.describe()} saw the chain end at seq {furthest.seq}, the database ends at seq {walk.last_seq}: "
            f"rows {walk.last_seq + 1}..{furthest.seq} were removed (truncated; the stories part at seq {walk.last_seq + 1})",
        )
    ]


def _head_problems(head: ChainHead | None, walk: _Walk, key: bytes | None) -> list[ChainBreak]:
    last_seq = walk.last_seq
    if head is None:
        return [ChainBreak(last_seq + 1, "the audit_head row is missing (deleted?): where the chain should end cannot be checked")]
    problems: list[ChainBreak] = []
    if head.seq > last_seq:
        reason = f"the head says the chain ends at seq {head.seq}, but the last row is {last_seq} (rows deleted from the end?)"
        problems.append(ChainBreak(last_seq + 1, reason))
    elif head.seq < last_seq:
        problems.append(ChainBreak(head.seq + 1, f"rows after seq {head.seq} were not written through opsbot (the head ends there)"))
    elif head.hash != walk.last_hash:
        problems.append(ChainBreak(last_seq, "the last row does not match the head's hash"))
    if head.key_id is not None and walk.keyed_from is None:
        reason = f"the head says the chain is keyed (key id {head.key_id}) but no row introduces a key (re-chained without it?)"
        problems.append(ChainBreak(last_seq, reason))
    elif head.key_id is None and walk.keyed_from is not None:
        reason = "the chain is keyed from this row, but the head says it is not (the head was rewritten)"
        problems.append(ChainBreak(walk.keyed_from, reason))
    elif key is not None and walk.keyed_from is None:
        reason = (
            "OPSBOT_AUDIT_KEY is set but the chain was never keyed: start opsbot once with the key (it records the key's "
            "introduction), or the keyed rows were re-chained without it"
        )
        problems.append(ChainBreak(last_seq, reason))
    return problems
