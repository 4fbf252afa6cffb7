"""Durations in the config and runbooks (a pydantic type over the grammar's parser), and ages for people."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

from commands.durations import format_duration, parse_duration


def humanize_age(seconds: float) -> str:
    """Elapsed time for people: ``"just now"``, ``"3 min ago"``, ``"2 h ago"``."""
    if seconds < 45:
        return "just now"
    if seconds < 3_600:
        return f"{round(seconds / 60)} min ago"
    if seconds < 86_400:
        return f"{round(seconds / 3_600)} h ago"
    return f"{round(seconds / 86_400)} d ago"


def _coerce(value: Any) -> Any:
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    return value


Duration = Annotated[timedelta, BeforeValidator(_coerce), PlainSerializer(format_duration, return_type=str)]
"""A ``timedelta`` field that accepts ``"30m"`` or seconds in YAML and prints back as ``"30m"``."""
