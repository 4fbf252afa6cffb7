"""Per-person command rate limits: a token bucket per Slack user, checked in the ack.

Why in the ack: a flood costs the most after the ack (parsing is cheap, the work is not), and
the person hears at once how long to wait. Why per person: 400 digests from one user delayed
another user's ``help`` by 9 s (issue 15); a bucket per person leaves everyone else's alone.
Each HTTP worker keeps its own buckets (no I/O on the ack path), so with W workers a person
can get up to W× the rate in the worst case; the fair queues behind it (``bot.serve.fair_queue``)
bound what that costs others.

Refusals are audited, but not one row per refused command: the first refusal of a burst, then at
most one row a minute per person with the count since the last one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

AUDIT_EVERY_SECONDS = 60.0
MAX_PEOPLE = 10_000
"""Buckets kept in memory; past it, the full (idle) ones are forgotten."""


@dataclass(frozen=True)
class RateDecision:
    """Whether a command may go on; if not, when to try again and whether to audit the refusal now."""

    allowed: bool
    retry_after: int = 0
    audit_refused: int | None = None
    """Refusals to record in one audit row now (None: not this time)."""


@dataclass
class _Bucket:
    tokens: float
    updated: float
    refused: int = 0
    audited_at: float | None = None


class PersonRateLimits:
    """``burst`` commands at once, then ``per_minute`` on average, per person. Not thread-safe (one event loop)."""

    def __init__(self, *, per_minute: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._per_second = per_minute / 60.0
        self._burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def take(self, person: str) -> RateDecision:
        """Spend one token of ``person``'s bucket, or say how long until there is one."""
        now = self._clock()
        bucket = self._buckets.get(person)
        if bucket is None:
            if len(self._buckets) >= MAX_PEOPLE:
                self._forget_idle(now)
            bucket = self._buckets[person] = _Bucket(tokens=self._burst, updated=now)
        bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._per_second)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return RateDecision(allowed=True)
        retry_after = max(1, math.ceil((1.0 - bucket.tokens) / self._per_second))
        bucket.refused += 1
        if bucket.audited_at is None or now - bucket.audited_at >= AUDIT_EVERY_SECONDS:
            refused, bucket.refused, bucket.audited_at = bucket.refused, 0, now
            return RateDecision(allowed=False, retry_after=retry_after, audit_refused=refused)
        return RateDecision(allowed=False, retry_after=retry_after)

    def _forget_idle(self, now: float) -> None:
        full = [
            person for person, bucket in self._buckets.items() if bucket.tokens + (now - bucket.updated) * self._per_second >= self._burst
        ]
        for person in full:
            del self._buckets[person]


def slow_down_text(retry_after: int) -> str:
    """What a person over their rate hears in the ack."""
    unit = "second" if retry_after == 1 else "seconds"
    return (
        "Slow down: you sent more commands than opsbot takes from one person at a time; nothing was done. "
        f"Try again in {retry_after} {unit}."
    )
