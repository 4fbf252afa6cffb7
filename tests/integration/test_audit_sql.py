"""The audit log on SQLite and PostgreSQL: appends chain, tampering is found and named."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import text, update

from bot.audit.events import AuditEvent, EventType
from bot.cli.main import main
from bot.store import audit as audit_store
from bot.store.database import Database
from bot.store.migrate import upgrade
from bot.store.models import AuditEventRow
from tests.conftest import REPO

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def append(database: Database, count: int, *, service: str = "checkout") -> None:
    for index in range(count):
        with database.transaction() as session:
            event = AuditEvent(
                event=EventType.COMMAND_RECEIVED, actor_id="U0ALICE", actor_name="alice", channel="C0OPS", request_id=index + 1,
                runbook="deploy", service=service, env="production", params={"version": f"1.{index}", "token": "xoxb-secret-1"},
                outcome="received", details={"n": index},
            )  # fmt: skip
            audit_store.append_events(session, [event], NOW)


def verify_cli(database_url: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["audit", "verify"], env={"OPSBOT_DATABASE_URL": database_url})
    return result.exit_code, result.output


def test_untouched_log_verifies(database: Database, database_url: str) -> None:
    append(database, 5)
    code, output = verify_cli(database_url)
    assert code == 0, output
    assert output.startswith("OK: 5 events, chain intact")


def test_secrets_are_redacted_before_hashing(database: Database) -> None:
    append(database, 1)
    with database.reading() as session:
        row = audit_store.tail(session, limit=1)[0]
    assert "xoxb" not in row.params
    assert '"token":"[redacted]"' in row.params


# Every column the hash covers (bot.audit.chain.ChainRow, less seq and the hashes, which have tests
# of their own): an edit to any one of them, who acted included, must break the row's hash.
HASHED_EDITS = {
    "at": datetime(2026, 11, 25, 12, 0, 1, tzinfo=UTC),
    "event": "approved",
    "actor_id": "U0EVE",
    "actor_name": "eve",
    "channel": "C0ELSEWHERE",
    "request_id": 99,
    "runbook": "rollback",
    "service": "payments",
    "env": "staging",
    "params": '{"version":"9.9"}',
    "outcome": "refused",
    "details": '{"n":99}',
}


@pytest.mark.parametrize("column", list(HASHED_EDITS))
def test_every_hashed_field_is_tamper_evident(database: Database, database_url: str, column: str) -> None:
    append(database, 5)
    with database.engine.begin() as connection:
        connection.execute(update(AuditEventRow).where(AuditEventRow.seq == 3).values({column: HASHED_EDITS[column]}))
    code, output = verify_cli(database_url)
    assert code == 1, output
    assert "audit row seq=3: content does not match its hash (the row was edited)" in output


def test_deleted_row_is_named(database: Database, database_url: str) -> None:
    append(database, 5)
    with database.engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_events WHERE seq = 2"))
    code, output = verify_cli(database_url)
    assert code == 1
    assert "audit row seq=3: rows 2..2 are missing (deleted?)" in output


def test_deleted_last_row_is_found_through_the_head(database: Database, database_url: str) -> None:
    append(database, 5)
    with database.engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_events WHERE seq = 5"))
    code, output = verify_cli(database_url)
    assert code == 1
    assert "audit row seq=5: the head says the chain ends at seq 5, but the last row is 4" in output


def test_inserted_forged_row_is_named(database: Database, database_url: str) -> None:
    append(database, 5)
    with database.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO audit_events (seq, at, event, actor_id, actor_name, channel, request_id, runbook, service, env, "
                "params, outcome, details, prev_hash, hash) SELECT 6, at, 'approved', 'U0EVE', 'eve', channel, request_id, runbook, "
                "service, env, params, 'approved', details, hash, :forged FROM audit_events WHERE seq = 5"
            ),
            {"forged": "f" * 64},
        )
    code, output = verify_cli(database_url)
    assert code == 1
    assert "audit row seq=6: content does not match its hash" in output


def test_renumbered_insert_in_the_middle_is_named(database: Database, database_url: str) -> None:
    append(database, 3)
    with database.engine.begin() as connection:
        connection.execute(text("UPDATE audit_events SET seq = seq + 10 WHERE seq >= 2"))
    code, output = verify_cli(database_url)
    assert code == 1
    assert "audit row seq=12: rows 2..11 are missing" in output


def test_threads_appending_keep_one_chain(database: Database) -> None:
    threads = [threading.Thread(target=append, args=(database, 25), kwargs={"service": f"s{index}"}) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report = audit_store.verify(database)
    assert report.broken is None
    assert report.rows == 200


def test_tail_filters_by_service(database: Database) -> None:
    append(database, 3, service="checkout")
    append(database, 2, service="payments")
    with database.reading() as session:
        rows = audit_store.tail(session, limit=10, service="payments")
        newest = audit_store.tail(session, limit=2)
        one_request = audit_store.tail(session, request_id=2)
    assert [row.service for row in rows] == ["payments", "payments"]
    assert rows[0].seq < rows[1].seq
    assert [row.seq for row in newest] == [4, 5], "the newest, newest last"
    assert [(row.seq, row.service) for row in one_request] == [(2, "checkout"), (5, "payments")]


def test_appends_return_their_seqs_and_move_the_head(database: Database) -> None:
    with database.transaction() as session:
        assert audit_store.append_events(session, [], NOW) == []
        seqs = audit_store.append_events(
            session, [AuditEvent(EventType.LOCKED, "U0A", "a"), AuditEvent(EventType.UNLOCKED, "U0A", "a")], NOW
        )
    assert seqs == [1, 2]
    with database.reading() as session:
        head = audit_store.read_head(session)
        rows = audit_store.tail(session)
        assert audit_store.count_events(session) == 2
    assert head is not None and (head.seq, head.hash, head.key_id) == (2, rows[-1].hash, None)
    assert rows[1].prev_hash == rows[0].hash and rows[0].prev_hash == "0" * 64
    assert [(row.event, row.actor_id, row.actor_name, row.at) for row in rows] == [
        ("locked", "U0A", "a", NOW),
        ("unlocked", "U0A", "a", NOW),
    ]


def test_events_are_read_by_time_window_with_its_exact_edges(database: Database) -> None:
    for minute, service in enumerate(["checkout", "payments", "checkout", "search"]):
        with database.transaction() as session:
            event = AuditEvent(EventType.LOCKED, "U0A", "a", service=service)
            audit_store.append_events(session, [event], NOW + timedelta(minutes=minute))
    at = [NOW + timedelta(minutes=minute) for minute in range(4)]
    with database.reading() as session:
        assert [row.seq for row in audit_store.events_between(session)] == [1, 2, 3, 4]
        assert [row.seq for row in audit_store.events_between(session, since=at[1], until=at[3])] == [2, 3], "[since, until)"
        assert [row.seq for row in audit_store.events_between(session, since=at[2], batch=1)] == [3, 4]
        assert [row.seq for row in audit_store.events_since(session, at[1])] == [3, 4], "strictly after"
        assert [row.seq for row in audit_store.events_since(session, NOW - timedelta(seconds=1), services=["checkout"])] == [1, 3]


def vacuum(database: Database, table: str) -> None:
    """What PostgreSQL's autovacuum does in time: dead rows' space becomes free for the next inserts.

    SQLite keeps audit_events in rowid order, and its rowid is the seq: nothing to do there.
    """
    if database.is_postgresql:
        with database.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text(f"VACUUM {table}"))


def test_the_log_is_read_in_chain_order_whatever_the_clocks_and_the_tables_layout(database: Database, database_url: str) -> None:
    """Export, digests and verify read the chain by seq: neither by time nor in the order rows lie in the table.

    Replicas' clocks differ by a little, so a later seq can carry an earlier time (read by the
    time index, rows would come in time order). A replica that dies between its append and its
    commit leaves dead rows on PostgreSQL; once vacuumed, the next append fills their place, so
    the table's own order is no longer the chain's.
    """
    seconds = {1: 2, 2: 0, 3: 1, 4: 3}  # seq -> its time, NOW + seconds (two replicas, one a little ahead)

    def appended(seq: int) -> None:
        with database.transaction() as session:
            assert audit_store.append_events(
                session, [AuditEvent(EventType.LOCKED, "U0A", "a")], NOW + timedelta(seconds=seconds[seq])
            ) == [seq]

    appended(1)
    appended(2)
    with pytest.raises(ConnectionError), database.transaction() as session:
        audit_store.append_events(session, [AuditEvent(EventType.UNLOCKED, "U0B", "b")], NOW)
        raise ConnectionError("the replica died before its commit")
    appended(3)
    vacuum(database, "audit_events")
    appended(4)
    since = NOW - timedelta(minutes=1)
    with database.reading() as session:
        assert [row.seq for row in audit_store.events_between(session)] == [1, 2, 3, 4]
        assert [row.seq for row in audit_store.events_between(session, since=since, until=NOW + timedelta(minutes=1))] == [1, 2, 3, 4]
        assert [row.seq for row in audit_store.events_since(session, since)] == [1, 2, 3, 4]
    report = audit_store.verify(database)
    assert (report.broken, report.rows, report.last_seq) == (None, 4, 4)
    code, output = verify_cli(database_url)
    assert code == 0 and output.startswith("OK: 4 events, chain intact"), output


def test_a_process_without_the_key_of_a_keyed_chain_refuses_to_append(database_url: str) -> None:
    keyed = Database(database_url, audit_key=b"k" * 40)
    upgrade(keyed)
    plain = Database(database_url)
    try:
        with keyed.transaction() as session:
            assert audit_store.introduce_key(session, b"k" * 40, NOW) == 1
        with keyed.reading() as session:
            [introduced] = audit_store.tail(session)
        assert (introduced.event, introduced.actor_id, introduced.actor_name) == ("audit_key_introduced", "", "opsbot")
        with (
            pytest.raises(audit_store.AuditKeyMismatch, match="OPSBOT_AUDIT_KEY is not set in this process"),
            plain.transaction() as session,
        ):
            audit_store.append_events(session, [AuditEvent(EventType.LOCKED, "U0A", "a")], NOW)
        with pytest.raises(audit_store.AuditKeyMismatch, match="keyed with key id"), plain.transaction() as session:
            audit_store.introduce_key(session, b"x" * 40, NOW)
        with keyed.transaction() as session:
            assert audit_store.append_events(session, [AuditEvent(EventType.LOCKED, "U0A", "a")], NOW) == [2]
        with keyed.reading() as session:
            head = audit_store.read_head(session)
        assert head is not None and head.seq == 2 and head.key_id is not None
    finally:
        plain.dispose()
        keyed.dispose()


def test_export_jsonl_and_csv(database: Database, database_url: str) -> None:
    append(database, 3)
    jsonl = CliRunner().invoke(main, ["audit", "export", "--format", "jsonl"], env={"OPSBOT_DATABASE_URL": database_url})
    assert jsonl.exit_code == 0
    lines = jsonl.output.strip().splitlines()
    assert len(lines) == 3 and '"hash"' in lines[0]
    csv_out = CliRunner().invoke(main, ["audit", "export", "--format", "csv"], env={"OPSBOT_DATABASE_URL": database_url})
    assert csv_out.output.splitlines()[0].startswith("seq,at,event")
    assert len(csv_out.output.strip().splitlines()) == 4


APPENDER = """
import sys
from datetime import UTC, datetime
from bot.audit.events import AuditEvent, EventType
from bot.store import audit as audit_store
from bot.store.database import Database
database = Database(sys.argv[1])
for index in range(int(sys.argv[2])):
    with database.transaction() as session:
        audit_store.append_events(session, [AuditEvent(event=EventType.STEP_PROGRESS, actor_id=sys.argv[3], details={"i": index})],
                                  datetime.now(UTC))
"""


@pytest.mark.postgres
def test_two_processes_append_one_valid_chain_on_postgresql(postgres_url: str) -> None:
    database = Database(postgres_url)
    upgrade(database)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    processes = [
        subprocess.Popen([sys.executable, "-c", APPENDER, postgres_url, "1000", f"P{index}"], env=env, cwd=REPO) for index in range(2)
    ]
    assert [process.wait(timeout=240) for process in processes] == [0, 0]
    report = audit_store.verify(database)
    assert report.broken is None
    assert report.rows == 2000
    with database.reading() as session:
        counts: dict[str, int] = {
            str(actor): int(count)
            for actor, count in session.execute(text("SELECT actor_id, count(*) FROM audit_events GROUP BY actor_id")).all()
        }
    assert counts == {"P0": 1000, "P1": 1000}
    database.dispose()


def test_db_upgrade_twice_is_a_noop_and_models_match(database_url: str) -> None:
    env = {"OPSBOT_DATABASE_URL": database_url}
    first = CliRunner().invoke(main, ["db", "upgrade"], env=env)
    second = CliRunner().invoke(main, ["db", "upgrade"], env=env)
    check = CliRunner().invoke(main, ["db", "check"], env=env)
    assert first.output.startswith("Schema upgraded from empty to")
    assert second.output.startswith("Schema already at")
    assert check.exit_code == 0 and "agree" in check.output


def test_an_audit_log_without_its_head_row_says_to_upgrade(database: Database) -> None:
    with database.engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_head"))
    missing = r"^audit_head row is missing: run `opsbot db upgrade`$"
    with pytest.raises(RuntimeError, match=missing), database.transaction() as session:
        audit_store.append_events(session, [AuditEvent(EventType.LOCKED, "U0A", "a")], NOW)
    with pytest.raises(RuntimeError, match=missing), database.transaction() as session:
        audit_store.introduce_key(session, b"k" * 40, NOW)
    with database.reading() as session:
        assert audit_store.read_head(session) is None
        assert audit_store.count_events(session) == 0


def test_tail_shows_the_last_twenty_by_default(database: Database) -> None:
    append(database, 21)
    with database.reading() as session:
        assert [row.seq for row in audit_store.tail(session)] == list(range(2, 22))
