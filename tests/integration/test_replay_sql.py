"""Replayed Slack deliveries are dropped across replicas (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from bot.audit.events import Actor
from bot.requests.invocation import Invocation
from bot.store.migrate import upgrade
from bot.store.models import AuditEventRow, RequestRow
from tests.doubles import FakeClock, RecordingReplier, make_touch_app


def test_the_same_delivery_twice_creates_one_request(tmp_path: Path, database_url: str) -> None:
    for replica in ("a", "b"):
        (tmp_path / replica).mkdir()
    first_replica, _ = make_touch_app(tmp_path / "a", database_url, FakeClock())
    upgrade(first_replica.database)
    second_replica, _ = make_touch_app(tmp_path / "b", database_url, FakeClock())
    try:
        invocation = Invocation(Actor("U0REQ", "requester"), "C0OPS", "touch svc v2 in production", delivery="sig-digest-1")
        first_replica.front_door.handle_command(invocation, RecordingReplier())
        replayed = RecordingReplier()
        second_replica.front_door.handle_command(invocation, replayed)
        with first_replica.database.reading() as session:
            requests = session.scalars(select(RequestRow)).all()
            replays = session.scalars(select(AuditEventRow).where(AuditEventRow.event == "replay_rejected")).all()
        assert len(requests) == 1
        assert len(replays) == 1 and replays[0].actor_id == "U0REQ"
        assert not replayed.messages, "a replay gets no answer: its sender is not a person"
        fresh = Invocation(Actor("U0REQ", "requester"), "C0OPS", "touch svc v3 in production", delivery="sig-digest-2")
        second_replica.front_door.handle_command(fresh, RecordingReplier())
        with first_replica.database.reading() as session:
            assert len(session.scalars(select(RequestRow)).all()) == 2
    finally:
        first_replica.close()
        second_replica.close()
