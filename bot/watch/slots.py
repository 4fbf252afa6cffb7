"""Which time slot a scheduled run belongs to: pure arithmetic every replica computes alike.

Why slots: APScheduler 3 keeps its jobs per process, so with three replicas every job
fires three times. Each firing computes the slot it belongs to from the trigger alone (not
from when this process started or when its thread woke up), and only the replica that
claims that slot in SQL runs it. For that to work, two replicas must derive the same slot
key from slightly different ``now`` values:

* interval jobs are aligned to the Unix epoch (fire times are whole multiples of the
  interval since 1970-01-01 UTC), so the slot is ``floor(now / interval)``, whatever time
  each replica started;
* cron jobs take the latest fire time ≤ ``now`` that is no older than the misfire grace,
  found by walking ``trigger.get_next_fire_time`` from just before ``now - grace``.

Cron slot keys are the wall-clock time the cron expression names, in the trigger's time
zone and without an offset. On a fall-back day APScheduler fires ``30 2 * * *`` twice
(02:30 CEST and 02:30 CET); both firings map to the key ``…T02:30:00`` and the second finds
the slot claimed, so a daily digest is posted once. On a spring-forward day the missing
02:30 fires at 03:30 CEST under the key ``…T02:30:00`` — once, an hour of wall time late.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

MAX_CRON_STEPS = 100_000
"""Bound on fire times walked for one slot (``* * * * *`` with a day of grace is about 1,600)."""
DST_SLACK = timedelta(hours=3)
"""More than any DST shift (at most 2 h anywhere): see ``latest_fire_time``."""


@dataclass(frozen=True)
class Slot:
    """One scheduled run: ``key`` is what ``job_slots.slot`` stores, ``fire_time`` the instant it was due."""

    key: str
    fire_time: datetime


def current_slot(trigger: BaseTrigger, now: datetime, grace: timedelta) -> Slot | None:
    """The slot a run starting at ``now`` belongs to: the latest fire time in ``[now - grace, now]``.

    ``None`` when nothing was due within the grace (a run woken far too late, or before the
    trigger's first fire time): such a run does nothing, the next slot will come.
    """
    if now.tzinfo is None:
        raise ValueError("slot arithmetic needs an aware datetime")
    fire_time = latest_fire_time(trigger, now, grace)
    if fire_time is None:
        return None
    return Slot(key=slot_key(trigger, fire_time), fire_time=fire_time)


def latest_fire_time(trigger: BaseTrigger, now: datetime, grace: timedelta) -> datetime | None:
    """The newest fire time of ``trigger`` that is ≤ ``now`` and ≥ ``now - grace`` (compared as instants).

    Cron fire times are walked from ``DST_SLACK`` before the window: APScheduler computes
    them in wall-clock time, and starting exactly at ``now - grace`` would jump over a run
    whose wall-clock time fell into a spring-forward gap (02:30 is fired at 01:30 UTC, but
    searched from 03:00 CEST the next "02:30" is tomorrow's).
    """
    if isinstance(trigger, IntervalTrigger):
        return _latest_interval_fire(trigger, now, grace)
    earliest = now - grace
    fire_time: datetime | None = trigger.get_next_fire_time(None, earliest - DST_SLACK)
    latest: datetime | None = None
    for _ in range(MAX_CRON_STEPS):
        if fire_time is None or fire_time > now:
            break
        if fire_time >= earliest:
            latest = fire_time
        following: datetime | None = trigger.get_next_fire_time(fire_time, fire_time)
        if following is not None and following <= fire_time:
            break
        fire_time = following
    return latest


def slot_key(trigger: BaseTrigger, fire_time: datetime) -> str:
    """``2026-10-25T02:30:00`` (cron: wall clock in the trigger's zone) or ``2026-10-25T00:30:00Z`` (UTC)."""
    if isinstance(trigger, CronTrigger):
        # APScheduler hands back fire times in the trigger's zone holding the wall-clock time the
        # expression names (even the non-existent 02:30 of a spring-forward day): keep that wall clock.
        local = fire_time if fire_time.tzinfo == trigger.timezone else fire_time.astimezone(trigger.timezone)
        return local.replace(tzinfo=None, fold=0).isoformat(timespec="seconds")
    return fire_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _latest_interval_fire(trigger: IntervalTrigger, now: datetime, grace: timedelta) -> datetime | None:
    start: datetime = trigger.start_date
    interval: timedelta = trigger.interval
    if now < start:
        return None
    # Integer microseconds: float seconds would put a run at 12:00:00.000 in the 11:59:59 slot.
    periods = (now - start) // interval
    fire_time = start + periods * interval
    end: datetime | None = trigger.end_date
    if end is not None and fire_time > end:
        return None
    if fire_time < now - grace:
        return None
    return fire_time.astimezone(UTC)
