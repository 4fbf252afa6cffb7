"""Group commit: events from many threads land in one valid chain, each caller's in its order."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from bot.audit.events import AuditEvent, EventType
from bot.store import audit as audit_store
from bot.store.audit_writer import AuditWriter
from bot.store.database import Database
from bot.store.models import AuditEventRow


def test_many_threads_one_chain_and_each_callers_order_kept(database: Database) -> None:
    writer = AuditWriter(database, lambda: datetime.now(UTC))

    def caller(name: str) -> None:
        for index in range(40):
            writer.append(AuditEvent(event=EventType.STEP_PROGRESS, actor_id=name, details={"i": index}))

    threads = [threading.Thread(target=caller, args=(f"T{n}",)) for n in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.close()
    report = audit_store.verify(database)
    assert report.broken is None and report.rows == 400
    with database.reading() as session:
        rows = session.scalars(select(AuditEventRow).order_by(AuditEventRow.seq)).all()
    for name in (f"T{n}" for n in range(10)):
        assert [row.details for row in rows if row.actor_id == name] == [f'{{"i":{index}}}' for index in range(40)]


def test_events_appended_together_stay_adjacent(database: Database) -> None:
    writer = AuditWriter(database, lambda: datetime.now(UTC))
    writer.append(AuditEvent(event=EventType.COMMAND_RECEIVED, actor_id="U1"), AuditEvent(event=EventType.DENIED, actor_id="U1"))
    writer.close()
    with database.reading() as session:
        assert [row.event for row in audit_store.tail(session, limit=5)] == ["command_received", "denied"]


def test_a_failed_commit_reaches_every_waiting_caller() -> None:
    writer = AuditWriter(Database("sqlite:////nonexistent-directory/opsbot.db"), lambda: datetime.now(UTC), retry_seconds=0.1)
    callers = 8
    start = threading.Barrier(callers)
    errors: list[BaseException] = []

    def append() -> None:
        start.wait()
        try:
            writer.append(AuditEvent(event=EventType.STEP_PROGRESS))
        except OperationalError as error:
            errors.append(error)

    threads = [threading.Thread(target=append) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    writer.close()
    assert not any(thread.is_alive() for thread in threads), "a caller is still waiting for a commit that failed"
    assert len(errors) == callers, "every caller must hear that its event was not written"
    assert all("unable to open database file" in str(error) for error in errors)
