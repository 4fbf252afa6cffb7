"""The post-ack pool: where the work after a Slack ack runs, inside the process that owns the core.

Two lanes. **Priority** work (clicks, notices, audit records, and urgent commands such as a
rollback, ``OPSBOT_URGENT_COMMANDS``) is never refused for room: a click dropped here would
leave its person with no answer, and a rollback is what someone needs most when everything else
is busy. **Bulk** work (every other command) waits in a ``FairQueue``: people are served in turn,
and past ``max_backlog`` pending commands the person with the most queued gives way (their
newest command is shed with a clear "busy" answer) rather than anyone else.

Of the threads, ``reserved`` only ever take priority work, so a flood of slow commands can keep
every other thread busy and a click or a rollback still starts at once.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Collection
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from bot.api.jobs import ApiJob
from bot.serve.fair_queue import FairQueue, QueueFull
from bot.slack.jobs import CommandJob, HandoffBusy, HandoffUnavailable, Job, JobRunner

logger = logging.getLogger(__name__)

POOL_THREADS = 8
"""Threads for the work after an ack (commands, clicks); runs have their own threads in the run engine."""
RESERVED_THREADS = 2
"""Of those, how many take only priority work (clicks, notices, urgent commands)."""


class PoolBusy(RuntimeError):
    """``max_backlog`` commands are pending and the submitter already has the most queued; refused, not queued."""


@dataclass
class _Task:
    function: Callable[..., Any]
    args: tuple[Any, ...]
    future: Future[Any] = field(default_factory=Future)
    on_shed: Callable[[], None] | None = None
    bulk: bool = False


class PostAckPool:
    """Threads over a priority lane and a fair bulk lane; counts its backlog and can say when it is idle."""

    def __init__(self, *, threads: int = POOL_THREADS, reserved: int = RESERVED_THREADS, max_backlog: int = 1_000) -> None:
        if not 0 <= reserved < threads:
            raise ValueError(f"reserved threads ({reserved}) must be fewer than all threads ({threads})")
        self._max_backlog = max_backlog
        self._priority: collections.deque[_Task] = collections.deque()
        self._bulk: FairQueue[_Task] = FairQueue()
        self._running_bulk = 0
        self._pending = 0
        self._closed = False
        self._changed = threading.Condition()
        self._threads = [
            threading.Thread(target=self._work, args=(index < reserved,), name=f"opsbot-work-{index}", daemon=True)
            for index in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def submit(
        self,
        function: Callable[..., Any],
        *args: Any,
        shed_when_busy: bool = False,
        person: str = "",
        on_shed: Callable[[], None] | None = None,
    ) -> Future[Any]:
        """Queue ``function(*args)``.

        ``shed_when_busy`` puts it in the bulk lane under ``person``: past ``max_backlog`` pending bulk
        tasks, the heaviest person's newest task is shed (its ``on_shed`` is called) to make room, or
        ``PoolBusy`` is raised if ``person`` is the heaviest. Otherwise it goes to the priority lane.
        """
        task = _Task(function, args, on_shed=on_shed, bulk=shed_when_busy)
        shed: _Task | None = None
        with self._changed:
            if self._closed:
                raise RuntimeError("the post-ack pool is shut down")
            if shed_when_busy:
                full = len(self._bulk) + self._running_bulk >= self._max_backlog
                try:
                    shed = self._bulk.put(person, task, full=full)
                except QueueFull:
                    raise PoolBusy(f"{len(self._bulk) + self._running_bulk} tasks are already queued in this process") from None
            else:
                self._priority.append(task)
            self._pending += 1 - (shed is not None)
            self._changed.notify_all()
        if shed is not None:
            shed.future.cancel()
            if shed.on_shed is not None:
                shed.on_shed()
        return task.future

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing submitted is left; False if ``timeout`` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while self._pending:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._changed.wait(remaining)
        return True

    def shutdown(self, *, wait: bool = True) -> None:
        """Stop taking work; with ``wait``, finish what is queued, else drop it."""
        with self._changed:
            self._closed = True
            if not wait:
                dropped = list(self._priority) + self._bulk.drain()
                self._priority.clear()
                for task in dropped:
                    task.future.cancel()
                self._pending -= len(dropped)
            self._changed.notify_all()
        if wait:
            for thread in self._threads:
                thread.join()

    def _work(self, priority_only: bool) -> None:
        while True:
            with self._changed:
                task = self._next(priority_only)
                while task is None:
                    if self._closed and not self._priority and not len(self._bulk):
                        return
                    self._changed.wait()
                    task = self._next(priority_only)
            self._run(task)

    def _next(self, priority_only: bool) -> _Task | None:
        if self._priority:
            return self._priority.popleft()
        if priority_only or not len(self._bulk):
            return None
        self._running_bulk += 1
        return self._bulk.pop()

    def _run(self, task: _Task) -> None:
        try:
            if task.future.set_running_or_notify_cancel():
                try:
                    task.future.set_result(task.function(*task.args))
                except BaseException as error:
                    task.future.set_exception(error)
                    # Work in the pool is meant never to raise; if some does, say so rather than let the Future keep it.
                    logger.error("work in the pool failed: %s", type(error).__name__, exc_info=error)
        finally:
            with self._changed:
                self._running_bulk -= task.bulk
                self._pending -= 1
                self._changed.notify_all()


class LocalHandoff:
    """Jobs go to this process's post-ack pool (the core lives in the same process: tests, Socket Mode inline)."""

    def __init__(self, pool: PostAckPool, jobs: JobRunner, *, urgent: Collection[str] = ()) -> None:
        self._pool = pool
        self._jobs = jobs
        self._urgent = frozenset(urgent)

    async def start(self) -> None:
        """Nothing to connect: the pool is already running."""

    async def close(self) -> None:
        """The core's ``close`` drains the pool; nothing to hand over."""

    def submit(self, job: Job | ApiJob) -> None:
        submit_job(self._pool, self._jobs, job, urgent=self._urgent)

    def is_available(self) -> bool:
        return True


def submit_job(pool: PostAckPool, jobs: JobRunner, job: Job | ApiJob, *, urgent: Collection[str] = ()) -> None:
    """Queue a job: commands in the fair bulk lane (shed past the backlog), urgent commands and everything else first."""
    try:
        if isinstance(job, CommandJob) and job.parsed.command not in urgent:
            pool.submit(
                jobs.run, job, shed_when_busy=True, person=job.invocation.actor.user_id, on_shed=lambda: _tell_shed(pool, jobs, job)
            )
        else:
            pool.submit(jobs.run, job)
    except PoolBusy as busy:
        raise HandoffBusy(str(busy)) from None
    except RuntimeError as stopped:  # the pool is shutting down
        raise HandoffUnavailable(str(stopped)) from None


def _tell_shed(pool: PostAckPool, jobs: JobRunner, job: CommandJob) -> None:
    """A queued command gave way to someone else's: its person hears "busy" (after the fact), and it is audited."""
    logger.warning("shed a queued %s command of %s to make room for others' work", job.parsed.command, job.invocation.actor.user_id)
    try:
        pool.submit(jobs.refuse_busy, job)
    except RuntimeError:
        logger.error("could not tell %s that their command was shed: the pool is shutting down", job.invocation.actor.user_id)
