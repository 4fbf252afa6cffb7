"""Slot arithmetic: every replica derives the same slot from the trigger, across DST changes too."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.catalog.schedules import EPOCH, cron_trigger, crontab_weekdays, interval_trigger
from bot.watch.slots import Slot, current_slot, slot_key

BERLIN = ZoneInfo("Europe/Berlin")
GRACE = timedelta(minutes=30)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


def slots_over(trigger_expr: str, start: datetime, end: datetime, *, step: timedelta = timedelta(minutes=1)) -> list[Slot]:
    """Every distinct slot a replica waking each ``step`` between start and end would compute."""
    trigger = cron_trigger(trigger_expr, "Europe/Berlin")
    found: list[Slot] = []
    now = start
    while now <= end:
        slot = current_slot(trigger, now, GRACE)
        if slot is not None and slot not in found:
            found.append(slot)
        now += step
    return found


# -- interval jobs: epoch-aligned ---------------------------------------------------------


def test_interval_slots_are_epoch_multiples_whatever_the_replica_started() -> None:
    trigger = interval_trigger(timedelta(seconds=60))
    early = current_slot(trigger, utc(2026, 11, 25, 12, 0, 0), timedelta(seconds=60))
    late = current_slot(trigger, utc(2026, 11, 25, 12, 0, 59, 999_999), timedelta(seconds=60))
    assert early == late == Slot("2026-11-25T12:00:00Z", utc(2026, 11, 25, 12, 0, 0))
    assert current_slot(trigger, utc(2026, 11, 25, 12, 1, 0), timedelta(seconds=60)) == Slot(
        "2026-11-25T12:01:00Z", utc(2026, 11, 25, 12, 1)
    )


def test_apscheduler_fires_interval_jobs_on_the_same_epoch_multiples() -> None:
    trigger = interval_trigger(timedelta(seconds=90))
    now = utc(2026, 11, 25, 12, 0, 7)
    first_fire = trigger.get_next_fire_time(None, now)
    assert (first_fire - EPOCH) % timedelta(seconds=90) == timedelta(0)
    assert current_slot(trigger, first_fire + timedelta(milliseconds=3), timedelta(seconds=90)) == Slot(
        slot_key(trigger, first_fire), first_fire
    )


def test_interval_run_woken_past_its_grace_has_no_slot() -> None:
    trigger = interval_trigger(timedelta(minutes=10))
    assert current_slot(trigger, utc(2026, 11, 25, 12, 9, 0), timedelta(minutes=2)) is None
    assert current_slot(trigger, utc(2026, 11, 25, 12, 1, 59), timedelta(minutes=2)) is not None


def test_interval_must_be_whole_seconds() -> None:
    with pytest.raises(ValueError, match="whole number of seconds"):
        interval_trigger(timedelta(milliseconds=1500))
    with pytest.raises(ValueError, match="at least 1 s"):
        interval_trigger(timedelta(0))


# -- cron jobs: latest fire time within the grace ------------------------------------------


def test_cron_slot_is_the_latest_fire_time_within_the_grace() -> None:
    trigger = cron_trigger("0 9 * * mon-fri", "Europe/Berlin")
    # Wednesday 2026-11-25, 09:00 CET = 08:00 UTC; a replica woken 20 s or 20 min late finds the same slot.
    on_time = current_slot(trigger, utc(2026, 11, 25, 8, 0, 20), GRACE)
    late = current_slot(trigger, utc(2026, 11, 25, 8, 20), GRACE)
    assert on_time == late == Slot("2026-11-25T09:00:00", datetime(2026, 11, 25, 9, 0, tzinfo=BERLIN))
    assert current_slot(trigger, utc(2026, 11, 25, 8, 31), GRACE) is None
    assert current_slot(trigger, utc(2026, 11, 25, 7, 59, 59), GRACE) is None
    assert current_slot(trigger, utc(2026, 11, 28, 8, 0, 20), GRACE) is None  # Saturday


def test_frequent_cron_coalesces_to_the_newest_fire_time() -> None:
    trigger = cron_trigger("*/5 * * * *", "UTC")
    assert current_slot(trigger, utc(2026, 11, 25, 9, 12), GRACE) == Slot("2026-11-25T09:10:00", utc(2026, 11, 25, 9, 10))


def test_numeric_weekdays_follow_crontab_not_apscheduler() -> None:
    assert crontab_weekdays("1-5") == "mon,tue,wed,thu,fri"
    assert crontab_weekdays("0") == crontab_weekdays("7") == "sun"
    assert crontab_weekdays("*/2") == "tue,thu,sat,sun"
    assert crontab_weekdays("5-7") == "fri,sat,sun"
    assert crontab_weekdays("mon-fri") == "mon-fri"
    trigger = cron_trigger("0 9 * * 1", "UTC")
    sunday = utc(2026, 11, 29, 10)
    assert trigger.get_next_fire_time(None, sunday) == utc(2026, 11, 30, 9)  # Monday, as in crontab


@pytest.mark.parametrize(
    ("expression", "timezone", "message"),
    [
        ("0 9 * *", "UTC", "5-field"),
        ("0 9 * * 9", "UTC", "not a weekday"),
        ("0 9 * * 5-1", "UTC", "backwards"),
        ("0 9 * * *", "Mars/Olympus", "time zone"),
    ],
)
def test_unreadable_cron_is_a_clear_error(expression: str, timezone: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cron_trigger(expression, timezone)


# -- DST in Europe/Berlin ---------------------------------------------------------------------


def test_spring_forward_daily_digest_keeps_its_wall_clock_time() -> None:
    # 2026-03-29: clocks jump 02:00 CET → 03:00 CEST. 09:00 stays 09:00 local: 08:00 UTC before, 07:00 UTC on the day.
    before = slots_over("0 9 * * *", utc(2026, 3, 28, 7, 30), utc(2026, 3, 28, 8, 40))
    on_the_day = slots_over("0 9 * * *", utc(2026, 3, 29, 6, 30), utc(2026, 3, 29, 7, 40))
    assert [slot.fire_time.astimezone(UTC) for slot in before] == [utc(2026, 3, 28, 8)]
    assert [slot.fire_time.astimezone(UTC) for slot in on_the_day] == [utc(2026, 3, 29, 7)]
    assert [slot.key for slot in on_the_day] == ["2026-03-29T09:00:00"]


def test_spring_forward_runs_a_skipped_wall_clock_time_once() -> None:
    # 02:30 does not exist on 2026-03-29; APScheduler fires it at 03:30 CEST (01:30 UTC): one slot, one run.
    found = slots_over("30 2 * * *", utc(2026, 3, 28, 23, 0), utc(2026, 3, 29, 4, 0))
    assert [(slot.key, slot.fire_time.astimezone(UTC)) for slot in found] == [("2026-03-29T02:30:00", utc(2026, 3, 29, 1, 30))]


def test_fall_back_repeated_wall_clock_time_is_one_slot() -> None:
    # 2026-10-25: 03:00 CEST → 02:00 CET, so 02:30 happens twice and APScheduler 3 fires at both.
    trigger = cron_trigger("30 2 * * *", "Europe/Berlin")
    first = trigger.get_next_fire_time(None, utc(2026, 10, 24, 12))
    second = trigger.get_next_fire_time(first, first)
    assert (first.astimezone(UTC), second.astimezone(UTC)) == (utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 30))
    keys = {slot_key(trigger, first), slot_key(trigger, second)}
    assert keys == {"2026-10-25T02:30:00"}  # the second firing finds the first one's claim
    found = slots_over("30 2 * * *", utc(2026, 10, 24, 23, 0), utc(2026, 10, 25, 3, 0))
    assert {slot.key for slot in found} == {"2026-10-25T02:30:00"}


def test_fall_back_daily_digest_at_nine_is_an_hour_later_in_utc() -> None:
    found = slots_over("0 9 * * *", utc(2026, 10, 24, 6, 30), utc(2026, 10, 25, 8, 40))
    assert [(slot.key, slot.fire_time.astimezone(UTC)) for slot in found] == [
        ("2026-10-24T09:00:00", utc(2026, 10, 24, 7)),
        ("2026-10-25T09:00:00", utc(2026, 10, 25, 8)),
    ]


def test_slot_math_needs_an_aware_time() -> None:
    with pytest.raises(ValueError, match="aware"):
        current_slot(interval_trigger(timedelta(seconds=5)), datetime(2026, 1, 1), timedelta(seconds=5))
