"""Human durations (``90s``, ``30m``, ``1h30m``, ``2d``): the grammar's, and the config's through ``bot.catalog.durations``."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+)\s*(d|h|m|s)")
_WHOLE = re.compile(r"^\s*(?:\d+\s*[dhms]\s*)+$")
_UNIT_SECONDS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
MAX_SECONDS = 3_650 * 86_400
"""Ten years: past this a duration is a typo, and Python's dates end at year 9999 (OverflowError)."""


def parse_duration(text: str) -> timedelta:
    """``"1h30m"`` → 90 minutes. Raises ``ValueError`` with the accepted forms."""
    if not _WHOLE.match(text):
        raise ValueError(f"{text!r} is not a duration; use forms like 90s, 30m, 2h, 1h30m, 1d")
    if len(text) > 40:
        raise ValueError(f"{text[:40]!r}… is not a duration; use forms like 90s, 30m, 2h, 1h30m, 1d")
    seconds = sum(int(number) * _UNIT_SECONDS[unit] for number, unit in _PART.findall(text))
    if seconds <= 0:
        raise ValueError(f"{text!r} must be longer than zero")
    if seconds > MAX_SECONDS:
        raise ValueError(f"{text!r} is longer than any duration opsbot accepts ({MAX_SECONDS // 86_400}d)")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """90 minutes → ``"1h30m"``; the inverse of ``parse_duration`` for whole seconds."""
    seconds = int(value.total_seconds())
    if seconds <= 0:
        return "0s"
    parts: list[str] = []
    for unit, size in _UNIT_SECONDS.items():
        amount, seconds = divmod(seconds, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts)
