"""Per-client rate limits: a token bucket per API client, in each HTTP worker (no I/O before the answer).

Each client has its own ``rate_per_minute`` and ``rate_burst`` (``api.clients``); a busy CI
cannot slow another client down. As with people's limits in Slack, W workers (or replicas)
can each grant the rate in the worst case; docs/api.md says so.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

AUDIT_EVERY_SECONDS = 60.0


@dataclass
class _Bucket:
    tokens: float
    updated: float
    audited_at: float | None = None


@dataclass(frozen=True)
class Throttle:
    """Refused: ``retry_after`` seconds until a token; ``audit`` for the first refusal of a minute."""

    retry_after: int
    audit: bool


class ClientRateLimits:
    """Buckets by client name; not thread-safe (one event loop per worker)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def take(self, client: str, *, per_minute: float, burst: int) -> Throttle | None:
        """Spend one token of ``client``'s bucket (None), or say how long to wait."""
        now = self._clock()
        per_second = per_minute / 60.0
        bucket = self._buckets.setdefault(client, _Bucket(tokens=float(burst), updated=now))
        bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.updated) * per_second)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        audit = bucket.audited_at is None or now - bucket.audited_at >= AUDIT_EVERY_SECONDS
        if audit:
            bucket.audited_at = now
        return Throttle(retry_after=max(1, math.ceil((1.0 - bucket.tokens) / per_second)), audit=audit)
