"""The scheduler's slot store on SQLite and PostgreSQL: one claim per (job, slot), finished by its owner once.

``test_scheduler_replicas.py`` races real schedulers; these pin the store's own promises, which
a race alone passes by luck (one replica, or a run too short to overlap).
"""

from __future__ import annotations

from datetime import timedelta

from bot.store import slots as slot_store
from bot.store.database import Database
from tests.doubles import FakeClock

NOW = FakeClock()()


def claim(database: Database, slot: str, owner: str, *, job: str = "digest:C0OPS", at: timedelta = timedelta()) -> bool:
    with database.transaction() as session:
        return slot_store.claim(session, job_id=job, slot=slot, owner=owner, now=NOW + at)


def finish(database: Database, slot: str, owner: str, outcome: str = "posted") -> bool:
    with database.transaction() as session:
        return slot_store.finish(session, job_id="digest:C0OPS", slot=slot, owner=owner, outcome=outcome, now=NOW + timedelta(seconds=5))


def test_a_slot_is_claimed_once_whoever_asks_next(database: Database) -> None:
    assert claim(database, "2026-11-25T09:00", "replica-a")
    assert not claim(database, "2026-11-25T09:00", "replica-b"), "a second replica must not run the same slot"
    assert not claim(database, "2026-11-25T09:00", "replica-a"), "nor the same replica twice (a DST fall-back hour)"
    assert claim(database, "2026-11-26T09:00", "replica-b"), "the next slot is free"
    assert claim(database, "2026-11-25T09:00", "replica-b", job="health"), "another job's slot of the same name is free"
    with database.reading() as session:
        row = slot_store.get_slot(session, job_id="digest:C0OPS", slot="2026-11-25T09:00")
    assert row is not None and (row.owner, row.claimed_at, row.finished_at) == ("replica-a", NOW, None)


def test_only_the_owner_finishes_a_slot_and_only_once(database: Database) -> None:
    claim(database, "s1", "replica-a")
    assert not finish(database, "s1", "replica-b"), "someone else's claim"
    assert not finish(database, "s0", "replica-a"), "a slot never claimed"
    assert finish(database, "s1", "replica-a", outcome="x" * 60)
    assert not finish(database, "s1", "replica-a"), "already finished"
    with database.reading() as session:
        row = slot_store.get_slot(session, job_id="digest:C0OPS", slot="s1")
    assert row is not None
    assert (row.finished_at, row.outcome) == (NOW + timedelta(seconds=5), "x" * slot_store.OUTCOME_LENGTH)


def test_slots_are_listed_oldest_first_and_pruned_strictly_before(database: Database) -> None:
    for minute in range(4):
        claim(database, f"s{minute}", "replica-a", at=timedelta(minutes=minute))
    claim(database, "other", "replica-a", job="health")
    with database.reading() as session:
        assert [row.slot for row in slot_store.slots_of(session, "digest:C0OPS")] == ["s0", "s1", "s2", "s3"]
        assert [row.slot for row in slot_store.slots_of(session, "digest:C0OPS", limit=2)] == ["s2", "s3"], "the newest two"
    with database.transaction() as session:
        assert slot_store.prune(session, before=NOW + timedelta(minutes=2)) == 3  # s0, s1 and the health job's
    with database.reading() as session:
        assert [row.slot for row in slot_store.slots_of(session, "digest:C0OPS")] == ["s2", "s3"]
        assert slot_store.get_slot(session, job_id="health", slot="other") is None


def test_the_last_digest_of_a_channel_is_remembered_and_replaced(database: Database) -> None:
    with database.reading() as session:
        assert slot_store.digest_state(session, "C0OPS") is None
    with database.transaction() as session:
        slot_store.record_digest(session, channel="C0OPS", posted_at=NOW, fingerprint="aaa")
    with database.transaction() as session:
        slot_store.record_digest(session, channel="C0OPS", posted_at=NOW + timedelta(days=1), fingerprint="bbb")
        slot_store.record_digest(session, channel="C0OTHER", posted_at=NOW, fingerprint="ccc")
    with database.reading() as session:
        state = slot_store.digest_state(session, "C0OPS")
        other = slot_store.digest_state(session, "C0OTHER")
    assert state is not None and (state.last_posted_at, state.last_fingerprint) == (NOW + timedelta(days=1), "bbb")
    assert other is not None and other.last_fingerprint == "ccc"


def test_slots_are_ordered_by_claim_time_then_name_and_a_page_is_a_hundred(database: Database) -> None:
    claim(database, "b", "replica-a", at=timedelta(minutes=1))
    claim(database, "a", "replica-a", at=timedelta(minutes=2))
    claim(database, "d", "replica-a", at=timedelta(minutes=3))
    claim(database, "c", "replica-a", at=timedelta(minutes=3))
    with database.reading() as session:
        assert [row.slot for row in slot_store.slots_of(session, "digest:C0OPS")] == ["b", "a", "c", "d"]
    for index in range(100):
        claim(database, f"z{index:03d}", "replica-a", at=timedelta(minutes=10 + index))
    with database.reading() as session:
        page = slot_store.slots_of(session, "digest:C0OPS")
    assert len(page) == 100 and page[0].slot == "z000" and page[-1].slot == "z099"


def test_pruning_nothing_says_nothing_went(database: Database) -> None:
    claim(database, "s1", "replica-a")
    with database.transaction() as session:
        assert slot_store.prune(session, before=NOW) == 0


def test_finishing_one_jobs_slot_leaves_another_jobs_slot_of_the_same_name(database: Database) -> None:
    claim(database, "2026-11-25T09:00", "replica-a")
    claim(database, "2026-11-25T09:00", "replica-a", job="health")
    assert finish(database, "2026-11-25T09:00", "replica-a")
    with database.reading() as session:
        other = slot_store.get_slot(session, job_id="health", slot="2026-11-25T09:00")
    assert other is not None and other.finished_at is None


def test_a_slot_and_a_digest_are_read_as_stored_now_within_one_transaction(database: Database) -> None:
    # The writes are single SQL statements that bypass the session's identity map: a second read in
    # the same transaction must still see them (the scheduler claims, runs, finishes and reads back).
    with database.transaction() as session:
        slot_store.claim(session, job_id="health", slot="s1", owner="replica-a", now=NOW)
        before = slot_store.get_slot(session, job_id="health", slot="s1")
        assert before is not None and before.finished_at is None
        slot_store.finish(session, job_id="health", slot="s1", owner="replica-a", outcome="ok", now=NOW + timedelta(seconds=1))
        after = slot_store.get_slot(session, job_id="health", slot="s1")
        assert after is not None and (after.finished_at, after.outcome) == (NOW + timedelta(seconds=1), "ok")

        slot_store.record_digest(session, channel="C0OPS", posted_at=NOW, fingerprint="first")
        first = slot_store.digest_state(session, "C0OPS")
        assert first is not None and first.last_fingerprint == "first"
        slot_store.record_digest(session, channel="C0OPS", posted_at=NOW + timedelta(days=1), fingerprint="second")
        second = slot_store.digest_state(session, "C0OPS")
        assert second is not None and second.last_fingerprint == "second"
