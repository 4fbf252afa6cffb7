"""Scripted failures and rate limits for the fake Slack Web API.

Tests script faults per method (``rate_limit()``, ``fail_next()``) and the
fake consumes them first-in first-out, one per call, so a test can say
"429 once, then channel_not_found, then succeed" and assert on what the
client did about each. The optional per-channel token bucket reproduces
Slack's documented chat.postMessage behaviour (about one message per second
per channel, with some burst allowance) for benchmarks of the bot's posting.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from .records import ApiError


class RateLimited(Exception):
    """Answer HTTP 429 with ``Retry-After`` and ``{"ok": false, "error": "ratelimited"}``."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"ratelimited, retry after {retry_after}s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class Fault:
    """One scripted answer: a 429 when ``retry_after`` is set, else an error."""

    error: str = "ratelimited"
    retry_after: int | None = None

    def trigger(self) -> None:
        """Raise the exception that makes the server give this answer."""
        if self.retry_after is not None:
            raise RateLimited(self.retry_after)
        raise ApiError(self.error)


class FaultScript:
    """Per-method FIFO queues of scripted faults. Not locked: callers hold the fake's lock."""

    def __init__(self) -> None:
        self._queues: dict[str, deque[Fault]] = {}

    def add(self, method: str, fault: Fault, times: int) -> None:
        if times < 1:
            raise ValueError("times must be >= 1")
        self._queues.setdefault(method, deque()).extend([fault] * times)

    def pop(self, method: str) -> Fault | None:
        """The next scripted fault for ``method``, consuming it."""
        queue = self._queues.get(method)
        if not queue:
            return None
        return queue.popleft()

    def pending(self) -> dict[str, int]:
        """How many scripted faults are left per method (for failure dumps)."""
        return {method: len(queue) for method, queue in self._queues.items() if queue}

    def clear(self) -> None:
        self._queues.clear()


@dataclass
class _Bucket:
    tokens: float
    updated: float


class ChannelBuckets:
    """Token buckets keyed by channel: ``per_second`` refill, ``burst`` capacity."""

    def __init__(self, per_second: float, burst: int) -> None:
        if per_second <= 0 or burst < 1:
            raise ValueError("per_second must be > 0 and burst >= 1")
        self.per_second = per_second
        self.burst = burst
        self._buckets: dict[str, _Bucket] = {}

    def take(self, channel: str, now: float) -> None:
        """Spend one token for ``channel`` or raise :class:`RateLimited`."""
        bucket = self._buckets.setdefault(channel, _Bucket(tokens=float(self.burst), updated=now))
        elapsed = max(0.0, now - bucket.updated)
        bucket.tokens = min(float(self.burst), bucket.tokens + elapsed * self.per_second)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return
        wait = (1.0 - bucket.tokens) / self.per_second
        raise RateLimited(max(1, math.ceil(wait)))
