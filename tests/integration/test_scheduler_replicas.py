"""Several replicas, one database: every job runs exactly once per slot, on SQLite and PostgreSQL.

The two-scheduler tests run real ``BackgroundScheduler`` instances (each with its own
memory job store, as in production) on a 1-second interval and wait until both have
fired the same slots several times; they assert on counts, never on timings.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.catalog.catalog import Catalog
from bot.catalog.config import Channels, Digest
from bot.catalog.schedules import cron_trigger, interval_trigger
from bot.errors import ConfigError
from bot.store import slots as slot_store
from bot.store.database import Database
from bot.store.models import utcnow
from bot.watch.digests import Digests
from bot.watch.incidents import IncidentWatch
from bot.watch.scheduler import SlotJob, SlotRun, SlotScheduler, digest_job_ids, opsbot_jobs
from bot.watch.slots import Slot
from tests.doubles import FakeClock, RecordingNotifier

WAIT_SECONDS = 30.0


class Recorder:
    """Counts what every replica did, and lets a test wait for a condition on it."""

    def __init__(self) -> None:
        self.executions: list[tuple[str, str]] = []  # (owner, slot)
        self.attempts: dict[str, set[str]] = {}  # slot -> owners that fired it
        self._changed = threading.Condition()

    def job(self, owner: str) -> Callable[[Slot], str]:
        def run(slot: Slot) -> str:
            with self._changed:
                self.executions.append((owner, slot.key))
            return "ran"

        return run

    def on_run(self, owner: str) -> Callable[[SlotRun], None]:
        def seen(run: SlotRun) -> None:
            with self._changed:
                if run.slot is not None:
                    self.attempts.setdefault(run.slot.key, set()).add(owner)
                self._changed.notify_all()

        return seen

    def wait_for(self, condition: Callable[[], bool]) -> None:
        with self._changed:
            assert self._changed.wait_for(condition, timeout=WAIT_SECONDS), f"condition not met; attempts={self.attempts}"

    def slots_fired_by_both(self) -> list[str]:
        return sorted(slot for slot, owners in self.attempts.items() if len(owners) == 2)


@pytest.fixture
def replicas(database: Database) -> Iterator[tuple[Recorder, list[SlotScheduler]]]:
    recorder = Recorder()
    schedulers = []
    for owner in ("replica-a", "replica-b"):
        # Each replica has its own Database (engine, pool) like a separate process would.
        scheduler = SlotScheduler(database=Database(database.url), owner=owner, on_run=recorder.on_run(owner))
        scheduler.add(SlotJob("tick", interval_trigger(timedelta(seconds=1)), recorder.job(owner), timedelta(seconds=1)))
        schedulers.append(scheduler)
    yield recorder, schedulers
    for scheduler in schedulers:
        scheduler.shutdown()


def test_two_schedulers_on_one_database_run_each_slot_exactly_once(
    replicas: tuple[Recorder, list[SlotScheduler]], database: Database
) -> None:
    recorder, schedulers = replicas
    for scheduler in schedulers:
        scheduler.start()

    recorder.wait_for(lambda: len(recorder.slots_fired_by_both()) >= 4)
    for scheduler in schedulers:
        scheduler.shutdown()

    per_slot = Counter(slot for _owner, slot in recorder.executions)
    contested = recorder.slots_fired_by_both()
    assert all(per_slot[slot] == 1 for slot in contested), per_slot
    assert max(per_slot.values()) == 1
    with database.reading() as session:
        claims = slot_store.slots_of(session, "tick")
    assert sorted(claim.slot for claim in claims) == sorted(per_slot)
    assert all(claim.outcome == "ran" and claim.finished_at is not None for claim in claims)
    assert {claim.owner for claim in claims} <= {"replica-a", "replica-b"}


def test_concurrent_claims_of_one_slot_let_exactly_one_in(database: Database) -> None:
    now = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    barrier = threading.Barrier(8)
    won: list[str] = []

    def claim(owner: str) -> None:
        barrier.wait()
        with database.transaction() as session:
            if slot_store.claim(session, job_id="digest:C0OPS", slot="2026-11-25T10:00:00", owner=owner, now=now):
                won.append(owner)

    threads = [threading.Thread(target=claim, args=(f"replica-{index}",)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1
    with database.reading() as session:
        row = slot_store.get_slot(session, job_id="digest:C0OPS", slot="2026-11-25T10:00:00")
    assert row is not None and row.owner == won[0]


def test_a_replica_restarting_inside_a_slot_does_not_run_it_again(database: Database) -> None:
    clock = FakeClock(datetime(2026, 11, 25, 8, 0, 5, tzinfo=UTC))  # 09:00:05 in Berlin
    runs: list[str] = []

    def post(slot: Slot) -> str:
        runs.append(slot.key)
        return "posted"

    job = SlotJob("digest:C0OPS", cron_trigger("0 9 * * mon-fri", "Europe/Berlin"), post, timedelta(minutes=30))
    before = SlotScheduler(database=database, owner="pod-1", clock=clock)
    before.add(job)
    first = before.run_due("digest:C0OPS")

    clock.advance(timedelta(minutes=4))  # the pod restarts (same name) and catches up the 09:00 slot
    after = SlotScheduler(database=database, owner="pod-1", clock=clock)
    after.add(job)
    second = after.run_due("digest:C0OPS")

    assert first == SlotRun("digest:C0OPS", first.slot, claimed=True, outcome="posted")
    assert second.slot == first.slot and not second.claimed
    assert runs == ["2026-11-25T09:00:00"]


def test_a_failing_job_records_its_failure_and_the_slot_stays_taken(database: Database) -> None:
    clock = FakeClock(datetime(2026, 11, 25, 12, 0, 30, tzinfo=UTC))

    def explode(slot: Slot) -> str:
        raise RuntimeError("backend exploded")

    scheduler = SlotScheduler(database=database, owner="pod-1", clock=clock)
    scheduler.add(SlotJob("health-watch", interval_trigger(timedelta(seconds=60)), explode, timedelta(seconds=60)))
    run = scheduler.run_due("health-watch")
    again = scheduler.run_due("health-watch")
    assert run.outcome == "failed: RuntimeError" and not again.claimed
    with database.reading() as session:
        row = slot_store.get_slot(session, job_id="health-watch", slot="2026-11-25T12:00:00Z")
    assert row is not None and row.outcome == "failed: RuntimeError" and row.finished_at == clock.now


def test_old_claims_are_pruned(database: Database) -> None:
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    with database.transaction() as session:
        slot_store.claim(session, job_id="j", slot="old", owner="a", now=now - timedelta(days=20))
        slot_store.claim(session, job_id="j", slot="new", owner="a", now=now - timedelta(days=1))
    with database.transaction() as session:
        assert slot_store.prune(session, before=now - timedelta(days=14)) == 1
    with database.reading() as session:
        assert [row.slot for row in slot_store.slots_of(session, "j")] == ["new"]


def test_a_digest_due_within_its_grace_runs_at_start(database: Database) -> None:
    """Every replica restarted at 09:00 (a deploy): the first one up still posts the 09:00 digest, once."""
    ran = threading.Event()
    runs: list[str] = []

    def post(slot: Slot) -> str:
        runs.append(slot.key)
        ran.set()
        return "posted"

    # A cron that fired less than a minute ago, whatever the time now: "every minute", grace 2 min.
    scheduler = SlotScheduler(database=database, owner="pod-1")
    scheduler.add(SlotJob("digest:C0OPS", cron_trigger("* * * * *", "UTC"), post, timedelta(minutes=2), catch_up=True))
    scheduler.start()
    try:
        assert ran.wait(WAIT_SECONDS)
    finally:
        scheduler.shutdown()
    assert len(runs) >= 1 and len(set(runs)) == len(runs)


def test_digest_job_ids_are_keyed_on_the_channel() -> None:
    digests = [Digest(channel="C0OPS"), Digest(channel="C0STAGING"), Digest(channel="C0OPS", envs=["staging"])]
    assert digest_job_ids(digests) == ["digest:C0OPS", "digest:C0STAGING", "digest:C0OPS#2"]


def test_the_app_schedules_each_digest_in_its_time_zone_plus_the_watch_and_pruning(example_catalog: Catalog, sqlite_url: str) -> None:
    database = Database(sqlite_url)
    notifier = RecordingNotifier()
    digests = Digests(catalog=example_catalog, database=database, notifier=notifier, clock=utcnow, health=lambda items: [])
    watch = IncidentWatch(config=example_catalog.config, database=database, notifier=notifier, clock=utcnow, health=lambda items: [])

    jobs = {job.job_id: job for job in opsbot_jobs(example_catalog.config, digests=digests, watch=watch, database=database)}

    assert sorted(jobs) == ["digest:C0OPS", "digest:C0STAGING", "health-watch", "job-slots-prune"]
    assert str(jobs["digest:C0OPS"].trigger.timezone) == "Europe/Berlin"
    assert jobs["digest:C0OPS"].catch_up and jobs["digest:C0OPS"].misfire_grace == timedelta(minutes=30)
    assert jobs["health-watch"].misfire_grace == example_catalog.config.health.interval
    broken = example_catalog.config.model_copy(
        update={"channels": Channels(digests=[Digest(channel="C0X", cron="0 25 * * *", timezone="Europe/Berlin")])}
    )
    with pytest.raises(ConfigError, match=r"channels.digests\[0\]"):
        opsbot_jobs(broken, digests=digests, watch=watch, database=database)
    database.dispose()
