"""APScheduler 3 in every replica, each run claiming its slot in SQL so a job fires once per slot.

Why not a shared job store: APScheduler 3 job stores cannot be shared by several
schedulers, so every replica keeps its own ``MemoryJobStore`` with the same jobs, and
every replica fires every job. The wrapper around each job makes that safe:
compute the slot from the trigger (``slots.current_slot``), INSERT the claim
(``store.slots.claim``), run only if the insert won, record the outcome.

Choices, per job (see docs/scheduling.md):

* ``coalesce=True`` — runs missed while the process was busy or paused collapse into one:
  a digest or a health check is about *now*, replaying old ones only adds noise;
* ``max_instances=1`` — a slow health check is not stacked on itself in one process
  (other replicas are kept out by the claim);
* ``misfire_grace_time`` — deliberate per job: a digest may run up to 30 min late (a
  rolling restart at 09:00 must not drop the day's digest, a digest hours late is noise);
  an interval job's grace is its interval (later than that, the next slot is due anyway).
  The same grace bounds the slot search, so a run APScheduler still accepts finds its slot;
* cron digests are caught up at start: if a replica starts inside a digest's grace and
  nobody claimed the slot (all replicas were restarting at 09:00), it runs it once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger

from bot.catalog.schedules import cron_trigger, interval_trigger
from bot.errors import ConfigError
from bot.metrics import record_scheduler_job
from bot.store import slots as slot_store
from bot.store.database import Database
from bot.store.models import utcnow
from bot.watch.slots import Slot, current_slot

if TYPE_CHECKING:
    from bot.catalog.config import Digest, OpsbotConfig
    from bot.watch.digests import Digests
    from bot.watch.incidents import IncidentWatch
    from bot.watch.insights_service import Insights

logger = logging.getLogger(__name__)

JobRun = Callable[[Slot], str | None]
"""A job body: gets its slot, returns a short outcome label (``posted``, ``quiet``…) or None for ``ok``."""

DIGEST_GRACE = timedelta(minutes=30)
SLOT_RETENTION = timedelta(days=14)
PRUNE_EVERY = timedelta(hours=1)
HEALTH_WATCH_JOB = "health-watch"
PRUNE_JOB = "job-slots-prune"
INSIGHTS_GAUGES_JOB = "insights-gauges"


@dataclass(frozen=True)
class SlotJob:
    """A job as every replica schedules it; ``job_id`` must be the same on all replicas."""

    job_id: str
    trigger: BaseTrigger
    run: JobRun
    misfire_grace: timedelta
    catch_up: bool = False


@dataclass(frozen=True)
class SlotRun:
    """What one firing did: no slot due, slot taken by someone else, or ran with ``outcome``."""

    job_id: str
    slot: Slot | None
    claimed: bool
    outcome: str | None = None


class SlotScheduler:
    """A ``BackgroundScheduler`` whose every run is claimed per slot in ``job_slots``."""

    def __init__(
        self,
        *,
        database: Database,
        owner: str,
        clock: Callable[[], datetime] = utcnow,
        threads: int = 4,
        on_run: Callable[[SlotRun], None] | None = None,
    ) -> None:
        self._database = database
        self._owner = owner
        # Wall-clock time, always: APScheduler fires on real time, so slots must be computed on it too.
        self._clock = clock
        self._on_run = on_run
        self._jobs: dict[str, SlotJob] = {}
        self._scheduler = BackgroundScheduler(
            jobstores={"default": MemoryJobStore()},
            executors={"default": ThreadPoolExecutor(max_workers=threads)},
            job_defaults={"coalesce": True, "max_instances": 1},
            timezone="UTC",
        )

    @property
    def owner(self) -> str:
        return self._owner

    @property
    def jobs(self) -> dict[str, SlotJob]:
        return dict(self._jobs)

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    def add(self, job: SlotJob) -> None:
        """Schedule ``job`` (before or after ``start``); a job with the same id is replaced."""
        self._jobs[job.job_id] = job
        options: dict[str, Any] = {}
        if job.catch_up:
            due = current_slot(job.trigger, self._clock(), job.misfire_grace)
            if due is not None:
                options["next_run_time"] = due.fire_time
        self._scheduler.add_job(
            self.run_due,
            trigger=job.trigger,
            args=[job.job_id],
            id=job.job_id,
            name=job.job_id,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=max(1, int(job.misfire_grace.total_seconds())),
            replace_existing=True,
            **options,
        )

    def start(self) -> None:
        if not self._scheduler.running:
            self._scheduler.start()
            logger.info("scheduler started as %s with jobs %s", self._owner, ", ".join(sorted(self._jobs)) or "(none)")

    def shutdown(self, *, wait: bool = True) -> None:
        """Stop firing; with ``wait``, let running jobs finish (their claims get an outcome)."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=wait)

    def run_due(self, job_id: str) -> SlotRun:
        """What APScheduler calls: slot → claim → run → outcome. Never raises (a failure is the outcome)."""
        job = self._jobs[job_id]
        now = self._clock()
        slot = current_slot(job.trigger, now, job.misfire_grace)
        if slot is None:
            logger.info("job %s woke at %s with no slot within its %s grace; skipped", job_id, now.isoformat(), job.misfire_grace)
            return self._report(SlotRun(job_id, None, claimed=False))
        try:
            with self._database.transaction() as session:
                claimed = slot_store.claim(session, job_id=job_id, slot=slot.key, owner=self._owner, now=now)
        except Exception:
            # Database unreachable: nobody can claim, so nobody runs; the next slot tries again.
            logger.warning("job %s could not claim slot %s; skipped", job_id, slot.key, exc_info=True)
            return self._report(SlotRun(job_id, slot, claimed=False, outcome="claim failed"))
        if not claimed:
            logger.debug("job %s slot %s is claimed elsewhere", job_id, slot.key)
            return self._report(SlotRun(job_id, slot, claimed=False))
        outcome = self._run(job, slot)
        try:
            with self._database.transaction() as session:
                slot_store.finish(session, job_id=job_id, slot=slot.key, owner=self._owner, outcome=outcome, now=self._clock())
        except Exception:
            logger.exception("job %s slot %s ran (%s) but its outcome could not be recorded", job_id, slot.key, outcome)
        return self._report(SlotRun(job_id, slot, claimed=True, outcome=outcome))

    def _run(self, job: SlotJob, slot: Slot) -> str:
        try:
            return job.run(slot) or "ok"
        except Exception as error:
            # The scheduler thread must survive any job; the claim records that this slot failed.
            logger.exception("scheduled job %s failed in slot %s", job.job_id, slot.key)
            return f"failed: {type(error).__name__}"

    def _report(self, run: SlotRun) -> SlotRun:
        job_kind = run.job_id.split(":", 1)[0]  # digest:<channel> → "digest": labels never carry channel ids
        if run.claimed:
            record_scheduler_job(job_kind, "failed" if (run.outcome or "").startswith("failed") else "ran")
        else:
            record_scheduler_job(job_kind, "claim_failed" if run.outcome == "claim failed" else "skipped")
        if self._on_run is not None:
            self._on_run(run)
        return run


def digest_job_ids(digests: list[Digest]) -> list[str]:
    """``digest:<channel>``, with ``#2``, ``#3`` for further digests to the same channel.

    Keyed on the channel, not the list position, so reordering the config between a rolling
    deploy's old and new replicas does not make them disagree on a job's identity.
    """
    seen: dict[str, int] = {}
    ids: list[str] = []
    for digest in digests:
        seen[digest.channel] = seen.get(digest.channel, 0) + 1
        count = seen[digest.channel]
        ids.append(f"digest:{digest.channel}" + (f"#{count}" if count > 1 else ""))
    return ids


def opsbot_jobs(config: OpsbotConfig, *, digests: Digests, watch: IncidentWatch, database: Database) -> list[SlotJob]:
    """The jobs every replica schedules: one per configured digest, the health watch, slot pruning.

    Raises ``ConfigError`` for a digest whose cron expression or time zone cannot be read.
    """
    jobs: list[SlotJob] = []
    problems: list[str] = []
    for index, (job_id, digest) in enumerate(zip(digest_job_ids(config.channels.digests), config.channels.digests, strict=True)):
        try:
            trigger: CronTrigger = cron_trigger(digest.cron, digest.timezone)
        except ValueError as error:
            problems.append(f"channels.digests[{index}]: {error}")
            continue
        jobs.append(SlotJob(job_id, trigger, _digest_run(digests, digest), DIGEST_GRACE, catch_up=True))
    if problems:
        raise ConfigError(problems)
    if config.health.enabled:
        every = config.health.interval
        jobs.append(SlotJob(HEALTH_WATCH_JOB, interval_trigger(every), lambda _slot: watch.check().outcome, every))
    jobs.append(SlotJob(PRUNE_JOB, interval_trigger(PRUNE_EVERY), lambda slot: _prune(database, slot), PRUNE_EVERY))
    return jobs


def build_scheduler(
    config: OpsbotConfig, *, database: Database, owner: str, digests: Digests, watch: IncidentWatch, insights: Insights | None = None
) -> SlotScheduler:
    """A scheduler with every opsbot job added, not yet started."""
    scheduler = SlotScheduler(database=database, owner=owner)
    for job in opsbot_jobs(config, digests=digests, watch=watch, database=database):
        scheduler.add(job)
    if insights is not None:
        scheduler.add(insights_gauges_job(config, insights, owner))
    return scheduler


def insights_gauges_job(config: OpsbotConfig, insights: Insights, owner: str) -> SlotJob:
    """The insights gauges, refreshed in *every* process (its own slot key): each scrape of each replica must see them."""
    from bot.watch.insights_service import refresh_gauges

    every = config.insights.metrics_every
    return SlotJob(f"{INSIGHTS_GAUGES_JOB}:{owner}", interval_trigger(every), lambda _slot: refresh_gauges(insights), every)


def _digest_run(digests: Digests, digest: Digest) -> JobRun:
    def run(slot: Slot) -> str:
        return digests.post(digest, slot=slot.key).outcome

    return run


def _prune(database: Database, slot: Slot) -> str:
    with database.transaction() as session:
        removed = slot_store.prune(session, before=slot.fire_time - SLOT_RETENTION)
    return f"pruned {removed}"
