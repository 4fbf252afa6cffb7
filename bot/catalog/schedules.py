"""Schedules in the config (digest cron expressions, watch intervals) as APScheduler triggers.

Here rather than beside the scheduler because ``opsbot validate`` must read a cron
expression exactly as the scheduler will, without starting one.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
"""Every interval trigger starts here, so all replicas share fire times."""

_WEEKDAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_WEEKDAY_ITEM = re.compile(r"^(?P<range>\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/(?P<step>\d+))?$")


def interval_trigger(every: timedelta) -> IntervalTrigger:
    """An interval trigger whose fire times are epoch multiples of ``every`` (whole seconds, ≥ 1 s)."""
    if every < timedelta(seconds=1) or every % timedelta(seconds=1):
        raise ValueError(f"a scheduled interval must be a whole number of seconds, at least 1 s (got {every})")
    return IntervalTrigger(seconds=int(every.total_seconds()), start_date=EPOCH, timezone=UTC)


def cron_trigger(expression: str, timezone: str) -> CronTrigger:
    """A trigger for a standard 5-field cron expression evaluated in ``timezone``.

    The weekday field follows crontab (0 or 7 = Sunday, 1 = Monday), not APScheduler 3's own
    numbering (0 = Monday), so ``0 9 * * 1-5`` means Monday to Friday as in every crontab.
    Raises ``ValueError`` naming the problem.
    """
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"{expression!r} is not a 5-field cron expression (minute hour day month weekday)")
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {timezone!r} (use an IANA name like Europe/Berlin)") from None
    minute, hour, day, month, weekday = fields
    return CronTrigger(minute=minute, hour=hour, day=day, month=month, day_of_week=crontab_weekdays(weekday), timezone=zone)


def crontab_weekdays(field: str) -> str:
    """Translate a crontab weekday field into APScheduler 3 terms (names, so numbering cannot differ).

    Fields without digits (``*``, ``mon-fri``) mean the same to both and pass through.
    """
    field = field.strip().lower()
    if not any(character.isdigit() for character in field):
        return field
    days: set[int] = set()
    for item in field.split(","):
        match = _WEEKDAY_ITEM.match(item)
        if match is None:
            raise ValueError(f"weekday field {field!r}: cannot read {item!r}")
        first, last = _weekday_range(match.group("range"), field)
        step = int(match.group("step") or 1)
        if step < 1:
            raise ValueError(f"weekday field {field!r}: a step must be at least 1")
        days.update(day % 7 for day in range(first, last + 1, step))
    ordered = [1, 2, 3, 4, 5, 6, 0]  # APScheduler's week starts on Monday; order only affects readability
    return ",".join(_WEEKDAY_NAMES[day] for day in ordered if day in days)


def _weekday_range(text: str, field: str) -> tuple[int, int]:
    if text == "*":
        return 0, 6
    first, _, last = text.partition("-")
    low = _weekday_number(first, field)
    high = _weekday_number(last, field) if last else low
    if high < low:
        raise ValueError(f"weekday field {field!r}: range {text!r} runs backwards")
    return low, high


def _weekday_number(text: str, field: str) -> int:
    if text.isdigit():
        value = int(text)
        if value > 7:
            raise ValueError(f"weekday field {field!r}: {value} is not a weekday (0-7, 0 and 7 are Sunday)")
        return value
    if text in _WEEKDAY_NAMES:
        return _WEEKDAY_NAMES.index(text)
    raise ValueError(f"weekday field {field!r}: {text!r} is not a weekday")
