"""Times in messages: one display zone for the whole bot (the config's ``timezone``), always named.

Why a process-wide zone: every message builder shows times (expiry, lock ends, history), and
the zone is a property of the deployment, read once from the config when the catalog loads;
threading it through each builder would change every call site for one constant.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo

_zone: tzinfo = ZoneInfo("UTC")


def use_zone(name: str) -> None:
    """Set the display zone (an IANA name the config validated)."""
    global _zone  # noqa: PLW0603 - one deployment-wide constant, set once at load
    _zone = ZoneInfo(name)


def clock_time(at: datetime, now: datetime | None = None, *, zone: tzinfo | None = None) -> str:
    """``14:05 CET``, or ``Sat 7 Dec 14:05 CET`` when ``at`` falls on another day than ``now``.

    ``zone`` replaces the deployment's zone for one reader (the App Home shows each person's own).
    """
    shown_in = zone or _zone
    local = at.astimezone(shown_in)
    same_day = now is not None and now.astimezone(shown_in).date() == local.date()
    shown = local.strftime("%H:%M") if same_day else f"{local.strftime('%a')} {local.day} {local.strftime('%b %H:%M')}"
    return f"{shown} {_name(local, shown_in)}"


def date_time(at: datetime, *, zone: tzinfo | None = None) -> str:
    """``2026-12-05 14:05 CET``."""
    shown_in = zone or _zone
    local = at.astimezone(shown_in)
    return f"{local.strftime('%Y-%m-%d %H:%M')} {_name(local, shown_in)}"


def _name(local: datetime, zone: tzinfo) -> str:
    return local.tzname() or str(zone)
