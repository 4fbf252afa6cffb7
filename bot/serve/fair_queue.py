"""A bounded queue that serves people in turn, so one person's flood cannot starve everyone else.

Commands wait here (in an HTTP worker's handoff, and in an executor's post-ack pool) per
person, and are taken round-robin: the fifth command of someone who sent fifty waits behind
the first command of someone who sent one. When the queue is full, the person with the most
queued gives up their newest command to make room for someone with fewer, and only a person
who already has the most queued is refused outright. (Issue 15: 200 commands from one user
used to shed 183 commands of others, a staging rollback among them.)
"""

from __future__ import annotations

import collections
from typing import Generic, TypeVar

T = TypeVar("T")


class QueueFull(Exception):
    """The queue is full and the submitter already has the most queued: refuse (do not evict anyone)."""


class FairQueue(Generic[T]):
    """Per-person FIFOs served round-robin. Not thread-safe: callers hold their own lock (or run on one loop)."""

    def __init__(self) -> None:
        self._queues: collections.OrderedDict[str, collections.deque[T]] = collections.OrderedDict()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def queued_by(self, person: str) -> int:
        return len(self._queues.get(person, ()))

    def put(self, person: str, item: T, *, full: bool) -> T | None:
        """Queue ``item``; if ``full``, evict and return the heaviest person's newest item, or raise ``QueueFull``."""
        evicted: T | None = None
        if full:
            heaviest = max(self._queues, key=lambda name: len(self._queues[name]), default=None)
            if heaviest is None or self.queued_by(person) + 1 >= len(self._queues[heaviest]):
                raise QueueFull(person)
            evicted = self._queues[heaviest].pop()
            self._size -= 1
        self._queues.setdefault(person, collections.deque()).append(item)
        self._size += 1
        return evicted

    def pop(self) -> T:
        """The next person's oldest item; that person goes to the back of the line. ``IndexError`` when empty."""
        if not self._queues:
            raise IndexError("pop from an empty FairQueue")
        person, queue = self._queues.popitem(last=False)
        item = queue.popleft()
        self._size -= 1
        if queue:
            self._queues[person] = queue
        return item

    def drain(self) -> list[T]:
        """Everything still queued (in service order), leaving the queue empty."""
        items: list[T] = []
        while self._queues:
            items.append(self.pop())
        return items
