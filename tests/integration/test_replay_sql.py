"""Replayed Slack deliveries are dropped across replicas (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from bot.audit.events import Actor
from bot.requests.invocation import Invocation
from bot.serve.wiring import OpsbotCore
from bot.slack.signatures import SIGNATURE_MAX_AGE_SECONDS
from bot.store.database import Database
from bot.store.migrate import upgrade
from bot.store.models import AuditEventRow, RequestRow, SeenRequestRow
from bot.store.replays import KEEP_FOR, first_time_seen, forget_old
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


def seen_digests(app: OpsbotCore) -> list[str]:
    with app.database.reading() as session:
        return list(session.scalars(select(SeenRequestRow.digest)))


def requests_made(app: OpsbotCore) -> int:
    with app.database.reading() as session:
        return len(session.scalars(select(RequestRow)).all())


def test_replay_memory_outlasts_the_signature_window_then_is_cleaned_up(tmp_path: Path, database_url: str) -> None:
    # Slack's signature is accepted while its timestamp is within 5 minutes of our clock, on either
    # side: a copy can arrive up to 10 minutes after the first, so the digest must be kept that long.
    assert timedelta(seconds=2 * SIGNATURE_MAX_AGE_SECONDS) <= KEEP_FOR
    clock = FakeClock()
    app, _ = make_touch_app(tmp_path, database_url, clock)
    upgrade(app.database)
    try:
        delivery = Invocation(Actor("U0REQ", "requester"), "C0OPS", "touch svc v2 in production", delivery="sig-digest-late")
        app.front_door.handle_command(delivery, RecordingReplier())
        clock.advance(KEEP_FOR)
        app.maintenance.sweep()  # the exact end of the window: still remembered
        app.front_door.handle_command(delivery, RecordingReplier())
        assert requests_made(app) == 1, "a copy inside the signature window must be dropped"
        assert seen_digests(app) == ["sig-digest-late"]

        clock.advance(timedelta(microseconds=1))
        app.maintenance.sweep()
        assert seen_digests(app) == [], "digests older than any acceptable signature are forgotten"
    finally:
        app.close()


def test_forget_old_drops_only_what_is_past_the_window(database: Database) -> None:
    start = FakeClock()()
    with database.transaction() as session:
        assert first_time_seen(session, "old", start)
        assert first_time_seen(session, "new", start + timedelta(minutes=3))
        assert not first_time_seen(session, "old", start + timedelta(minutes=4))
    with database.transaction() as session:
        assert forget_old(session, start + KEEP_FOR) == 0
        assert forget_old(session, start + KEEP_FOR + timedelta(seconds=1)) == 1
    with database.transaction() as session:
        assert first_time_seen(session, "old", start + KEEP_FOR + timedelta(seconds=2)), "forgotten, so new again"
        assert not first_time_seen(session, "new", start + KEEP_FOR + timedelta(seconds=2))
