"""The audit chain's outside anchor (issue 15, item 8): each tampering the review found, given an anchor taken before it.

The review's four: deleting the last rows and moving the head back; deleting the last rows and
the ``audit_head`` row; a full re-chain after rewriting who approved; a forged ``approved``
event appended with the head updated. Each is done here with plain SQL, as someone holding the
database's password would; anchors come from opsbot's own JSON log line, as a log shipper keeps it.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text

from bot.audit.anchors import parse_anchors
from bot.audit.chain import chain_hash, format_time
from bot.audit.events import AuditEvent, EventType
from bot.cli.main import main
from bot.logs import JsonFormatter
from bot.store import audit as audit_store
from bot.store.database import Database
from bot.store.migrate import upgrade
from bot.store.models import AuditEventRow
from bot.watch.anchoring import ANCHOR_LOGGER, AuditAnchoring

KEY = "k" * 40
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
REQUESTER, APPROVER, MALLORY = "U0REQ", "U0APP", "U0MAL"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, minutes: int) -> datetime:
        self.now += timedelta(minutes=minutes)
        return self.now


class AnchorLog:
    """opsbot's anchor log lines, as a log shipper would keep them: one JSON object per line in a file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stream = io.StringIO()
        self._handler = logging.StreamHandler(self._stream)
        self._handler.setFormatter(JsonFormatter())
        logging.getLogger(ANCHOR_LOGGER).addHandler(self._handler)

    def close(self) -> None:
        logging.getLogger(ANCHOR_LOGGER).removeHandler(self._handler)

    def write(self) -> str:
        self.path.write_text(self._stream.getvalue())
        return str(self.path)


@pytest.fixture
def anchor_log(tmp_path: Path) -> Iterator[AnchorLog]:
    log = AnchorLog(tmp_path / "anchors.jsonl")
    yield log
    log.close()


def keyed_database(url: str, *, key: str | None) -> Database:
    database = Database(url, audit_key=key.encode() if key else None)
    upgrade(database)
    if key:
        with database.transaction() as session:
            audit_store.introduce_key(session, key.encode(), T0)
    return database


def request_story(database: Database, clock: Clock, anchoring: AuditAnchoring) -> None:
    """A production deploy: asked, anchored, approved by U0APP, run, anchored again (half an hour between steps)."""

    def event(kind: EventType, outcome: str, actor: tuple[str, str] = ("", "opsbot")) -> AuditEvent:
        return AuditEvent(kind, actor[0], actor[1], "C0OPS", 1, "deploy", "checkout", "production", outcome=outcome)

    requester, approver = (REQUESTER, "req"), (APPROVER, "app")
    steps: list[list[AuditEvent] | None] = [  # None: publish an anchor
        [event(EventType.COMMAND_RECEIVED, "received", requester), event(EventType.APPROVAL_REQUESTED, "pending", requester)],
        None,
        [event(EventType.APPROVAL_GIVEN, "counted", approver), event(EventType.APPROVED, "approved", approver)],
        [event(EventType.STARTED, "running"), event(EventType.SUCCEEDED, "succeeded")],
        None,
    ]
    for step in steps:
        clock.advance(30)
        if step is None:
            anchoring.publish("scheduled")
            continue
        with database.transaction() as session:
            audit_store.append_events(session, step, clock())


def verify_cli(database_url: str, *anchor_files: str, key: str | None = None) -> tuple[int, str]:
    args = ["audit", "verify"] + [part for path in anchor_files for part in ("--anchors", path)]
    env = {"OPSBOT_DATABASE_URL": database_url, "OPSBOT_AUDIT_KEY": key}
    result = CliRunner().invoke(main, args, env=env)
    return result.exit_code, result.output


@pytest.fixture
def story(database_url: str, anchor_log: AnchorLog) -> Iterator[tuple[Database, str]]:
    """A plain (unkeyed) chain with the request's story and two anchors in the log."""
    database = keyed_database(database_url, key=None)
    clock = Clock()
    request_story(database, clock, AuditAnchoring(database=database, sinks=[], clock=clock))
    yield database, anchor_log.write()
    database.dispose()


# -- the tampering, in SQL -----------------------------------------------------------------------


def rows(database: Database) -> list[AuditEventRow]:
    with database.reading() as session:
        return list(session.scalars(select(AuditEventRow).order_by(AuditEventRow.seq)))


def move_head(database: Database, seq: int, digest: str) -> None:
    with database.engine.begin() as connection:
        connection.execute(text("UPDATE audit_head SET seq = :seq, last_hash = :hash"), {"seq": seq, "hash": digest})


def truncate(database: Database, keep: int) -> None:
    with database.engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_events WHERE seq > :keep"), {"keep": keep})


def rechain(database: Database, *, from_seq: int) -> None:
    """Recompute every hash from ``from_seq`` on with plain SHA-256 and move the head: what a database writer can do."""
    all_rows = rows(database)
    prev = all_rows[from_seq - 2].hash if from_seq > 1 else "0" * 64
    with database.engine.begin() as connection:
        for row in all_rows[from_seq - 1 :]:
            fields = (row.seq, format_time(row.at), row.event, row.actor_id, row.actor_name, row.channel, row.request_id,
                      row.runbook, row.service, row.env, row.params, row.outcome, row.details)  # fmt: skip
            digest = chain_hash(fields, prev)
            connection.execute(
                text("UPDATE audit_events SET prev_hash = :p, hash = :h WHERE seq = :s"), {"p": prev, "h": digest, "s": row.seq}
            )
            prev = digest
        connection.execute(text("UPDATE audit_head SET seq = :seq, last_hash = :hash"), {"seq": all_rows[-1].seq, "hash": prev})


def forge_approval(database: Database, *, at: datetime) -> None:
    """Append an ``approved`` row by hand, hashed the way opsbot hashes (plain SHA-256), and move the head to it."""
    last = rows(database)[-1]
    seq = last.seq + 1
    fields = (seq, format_time(at), "approved", MALLORY, "mallory", "C0OPS", 2, "deploy", "checkout", "production", "{}", "approved", "{}")
    digest = chain_hash(fields, last.hash)
    with database.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO audit_events (seq, at, event, actor_id, actor_name, channel, request_id, runbook, service, env, params, "
                "outcome, details, prev_hash, hash) VALUES (:seq, :at, 'approved', :actor, 'mallory', 'C0OPS', 2, 'deploy', "
                "'checkout', 'production', '{}', 'approved', '{}', :prev, :hash)"
            ),
            {
                "seq": seq,
                "at": stored_time(database, at),
                "actor": MALLORY,
                "prev": last.hash,
                "hash": digest,
            },
        )
    move_head(database, seq, digest)


def stored_time(database: Database, at: datetime) -> object:
    """How the ``at`` column holds a time: timestamptz on PostgreSQL, UTC text with microseconds on SQLite (``UtcDateTime``)."""
    return at if database.is_postgresql else at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


# -- the four tamperings -------------------------------------------------------------------------


def test_the_untouched_story_extends_every_anchor(story: tuple[Database, str], database_url: str) -> None:
    code, output = verify_cli(database_url, story[1])
    assert code == 0, output
    assert "extends all 2 anchors" in output


def truncate_and_move_head_back(database: Database) -> None:
    kept = rows(database)[2]  # the request, its approval request and the approval stay; "approved" and the run go
    truncate(database, keep=3)
    move_head(database, 3, kept.hash)


def truncate_and_delete_head(database: Database) -> None:
    truncate(database, keep=3)
    with database.engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_head"))


def rewrite_who_approved_and_rechain(database: Database) -> None:
    with database.engine.begin() as connection:
        connection.execute(text("UPDATE audit_events SET actor_id = :who, actor_name = 'mallory' WHERE seq IN (3, 4)"), {"who": MALLORY})
    rechain(database, from_seq=3)


def forge_backdated_approval(database: Database) -> None:
    forge_approval(database, at=T0 + timedelta(minutes=30))  # dated as if it came with the request, two hours before the last anchor


@pytest.mark.parametrize(
    ("tamper", "without_anchors", "with_anchors"),
    [
        pytest.param(
            truncate_and_move_head_back, [],
            ["saw the chain end at seq 6, the database ends at seq 3", "the stories part at seq 4"], id="truncation-head-moved-back",
        ),
        pytest.param(
            truncate_and_delete_head, ["the audit_head row is missing"],
            ["the audit_head row is missing", "rows 4..6 were removed"], id="deleted-head-row",
        ),
        pytest.param(
            rewrite_who_approved_and_rechain, [],
            ["re-chained; the stories part between seq 3 and 6", "the chain still agrees with the anchors up to seq 2"],
            id="full-rechain-after-rewriting-who-approved",
        ),
        pytest.param(
            forge_backdated_approval, [], ["audit row seq=7: dated 2026-12-01T09:30:00.000000Z", "back-dated"],
            id="forged-backdated-approval-head-moved",
        ),
    ],
)  # fmt: skip
def test_each_tampering_is_found_by_the_anchor(
    story: tuple[Database, str], database_url: str, tamper: Callable[[Database], None], without_anchors: list[str], with_anchors: list[str]
) -> None:
    """Without an anchor a tampering is self-consistent (exit 0) unless it broke the chain itself; with one, it is named."""
    database, anchors = story
    tamper(database)

    code, output = verify_cli(database_url)
    assert code == (1 if without_anchors else 0), output
    assert all(message in output for message in without_anchors), output

    code, output = verify_cli(database_url, anchors)
    assert code == 1
    assert all(message in output for message in with_anchors), output


# -- the key -------------------------------------------------------------------------------------


@pytest.fixture
def keyed_story(database_url: str, anchor_log: AnchorLog) -> Iterator[tuple[Database, str]]:
    database = keyed_database(database_url, key=KEY)
    clock = Clock()
    request_story(database, clock, AuditAnchoring(database=database, sinks=[], clock=clock))
    yield database, anchor_log.write()
    database.dispose()


def test_a_keyed_chain_verifies_with_its_key_and_not_without(keyed_story: tuple[Database, str], database_url: str) -> None:
    code, output = verify_cli(database_url, keyed_story[1], key=KEY)
    assert code == 0, output
    assert "keyed since seq 1" in output

    code, output = verify_cli(database_url)
    assert code == 1
    assert "verify it with OPSBOT_AUDIT_KEY" in output


def rewrite_who_approved_without_the_key(database: Database) -> None:
    with database.engine.begin() as connection:
        connection.execute(text("UPDATE audit_events SET actor_id = :who WHERE seq = 4"), {"who": MALLORY})
    rechain(database, from_seq=4)


def forge_an_approval_dated_now(database: Database) -> None:
    forge_approval(database, at=datetime.now(UTC))


@pytest.mark.parametrize(
    ("tamper", "found"),
    [
        pytest.param(rewrite_who_approved_without_the_key, "audit row seq=4: content does not match its keyed hash", id="rechain"),
        pytest.param(forge_an_approval_dated_now, "audit row seq=8: content does not match its keyed hash", id="forged-append-dated-now"),
    ],
)
def test_a_keyed_chain_finds_rows_hashed_without_the_key(
    keyed_story: tuple[Database, str], database_url: str, tamper: Callable[[Database], None], found: str
) -> None:
    database, anchors = keyed_story
    tamper(database)

    code, output = verify_cli(database_url, anchors, key=KEY)

    assert code == 1
    assert found in output


def test_a_process_with_another_key_refuses_to_append(keyed_story: tuple[Database, str], database_url: str) -> None:
    other = Database(database_url, audit_key=b"x" * 40)
    try:
        with pytest.raises(audit_store.AuditKeyMismatch, match="keyed with key id"), other.transaction() as session:
            audit_store.append_events(session, [AuditEvent(EventType.LOCKED, "U0REQ", "req")], T0)
    finally:
        other.dispose()
    assert verify_cli(database_url, key=KEY)[0] == 0


def test_a_key_introduced_on_an_existing_log_keeps_the_old_rows_verifiable(database_url: str) -> None:
    database = keyed_database(database_url, key=None)
    try:
        with database.transaction() as session:
            audit_store.append_events(session, [AuditEvent(EventType.LOCKED, "U0REQ", "req")], T0)
        with database.transaction() as session:
            assert audit_store.introduce_key(session, KEY.encode(), T0) == 2
        with database.transaction() as session:
            assert audit_store.introduce_key(session, KEY.encode(), T0) is None  # idempotent: every executor calls it at start
    finally:
        database.dispose()

    code, output = verify_cli(database_url, key=KEY)
    assert code == 0, output
    assert "keyed since seq 2" in output


# -- anchors' formats ----------------------------------------------------------------------------


def test_anchors_are_read_from_log_lines_pasted_messages_and_exports() -> None:
    anchor = {"seq": 4, "hash": "a" * 64, "at": "2026-12-01T09:00:00.000000Z"}
    lines = [
        json.dumps({"ts": "…", "level": "info", "logger": ANCHOR_LOGGER, "event": "audit anchor", "audit_anchor": anchor}),
        "Audit anchor: the audit log ends at seq 4. `" + json.dumps({"audit_anchor": anchor}) + "`",
        json.dumps({"seq": 5, "at": "2026-12-01T09:01:00+00:00", "prev_hash": "a" * 64, "hash": "b" * 64, "event": "locked"}),
        "an unrelated line",
    ]

    anchors = parse_anchors(lines, source="mixed.txt")

    assert [(a.seq, a.hash[0], a.source) for a in anchors] == [(4, "a", "mixed.txt:1"), (4, "a", "mixed.txt:2"), (5, "b", "mixed.txt:3")]


def test_a_damaged_anchor_file_is_a_clear_error(tmp_path: Path, database: Database, database_url: str) -> None:
    damaged = tmp_path / "anchors.txt"
    damaged.write_text(json.dumps({"audit_anchor": {"seq": 3, "hash": "not-a-hash", "at": "2026-12-01T09:00:00Z"}}) + "\n")

    code, output = verify_cli(database_url, str(damaged))

    assert code == 2
    assert "anchors.txt:1: hash must be 64 lowercase hex digits" in output
