"""When to publish whose App Home: changes coalesced per person, bursts debounced, Slack's Retry-After honoured.

Pure bookkeeping on a monotonic clock passed in, so it is tested without threads or sleeps;
``bot.requests.app_home`` drives it from its one publishing thread.

Why: ``views.publish`` is rate limited per workspace (Tier 4), and one approval can concern a
dozen people while a run's start, progress and end arrive within seconds. A person's home is
published at most once per ``min_interval``, a little after the first change of a burst
(``debounce``), with everything that changed by then; when Slack answers ``ratelimited``, no
home is published before its ``Retry-After`` has passed.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PublishSchedule:
    debounce: float = 0.5
    min_interval: float = 1.0
    _due: dict[str, float] = field(default_factory=dict)
    _last: dict[str, float] = field(default_factory=dict)
    _paused_until: float = 0.0

    def changed(self, user_id: str, now: float, *, after: float | None = None) -> None:
        """Something on the person's home changed (``after``: publish no sooner than that many seconds from now).

        A person already waiting keeps their earlier time: a steady stream of changes must not
        postpone their home forever.
        """
        wanted = now + (self.debounce if after is None else after)
        earliest = max(wanted, self._last.get(user_id, float("-inf")) + self.min_interval, self._paused_until)
        current = self._due.get(user_id)
        self._due[user_id] = earliest if current is None else min(current, earliest)

    def due(self, now: float) -> list[str]:
        """The people whose home should be published now (removed from the schedule), earliest first."""
        if now < self._paused_until:
            return []
        ready = sorted((at, user) for user, at in self._due.items() if at <= now)
        for _, user in ready:
            del self._due[user]
        return [user for _, user in ready]

    def next_at(self) -> float | None:
        """When the next person is due (None: nobody waits)."""
        if not self._due:
            return None
        return max(min(self._due.values()), self._paused_until)

    def published(self, user_id: str, now: float) -> None:
        self._last[user_id] = now

    def rate_limited(self, user_id: str, now: float, retry_after: float) -> None:
        """Slack said ``ratelimited``: nobody's home goes out before ``retry_after``; this person's is retried then."""
        self._paused_until = max(self._paused_until, now + max(retry_after, 0.0))
        for user in list(self._due):
            self._due[user] = max(self._due[user], self._paused_until)
        self._due[user_id] = self._paused_until

    def waiting(self) -> int:
        return len(self._due)
