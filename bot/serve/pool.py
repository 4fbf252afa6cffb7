"""The post-ack pool: where the work after a Slack ack runs, inside the process that owns the core.

Bounded for new commands: past ``max_backlog`` queued tasks a new slash command is refused
with a clear "busy" answer instead of queueing behind a flood (an unbounded queue would grow
without limit and answer people minutes late). Clicks, notices and audit records are never
refused for room: a click dropped here would leave its person with no answer at all.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from bot.slack.jobs import CommandJob, HandoffBusy, HandoffUnavailable, Job, JobRunner

logger = logging.getLogger(__name__)

POOL_THREADS = 8
"""Threads for the work after an ack (commands, clicks); runs have their own threads in the run engine."""


class PoolBusy(RuntimeError):
    """``max_backlog`` tasks are queued; a new command is refused, not queued."""


class PostAckPool:
    """A thread pool that counts its backlog and can say when it is idle."""

    def __init__(self, *, threads: int = POOL_THREADS, max_backlog: int = 1_000) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="opsbot-work")
        self._max_backlog = max_backlog
        self._pending: set[Future[Any]] = set()
        self._idle = threading.Condition()

    def submit(self, function: Callable[..., Any], *args: Any, shed_when_busy: bool = False) -> Future[Any]:
        """Queue ``function(*args)``; ``shed_when_busy`` raises ``PoolBusy`` past the backlog instead of queueing."""
        with self._idle:
            if shed_when_busy and len(self._pending) >= self._max_backlog:
                raise PoolBusy(f"{len(self._pending)} tasks are already queued in this process")
            future = self._pool.submit(function, *args)
            self._pending.add(future)
        future.add_done_callback(self._forget)
        return future

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing submitted is left; False if ``timeout`` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            while self._pending:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def shutdown(self, *, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=not wait)

    def _forget(self, future: Future[Any]) -> None:
        # Work in the pool is meant never to raise; if some does, say so rather than let the Future keep it.
        error = None if future.cancelled() else future.exception()
        if error is not None:
            logger.error("work in the pool failed: %s", type(error).__name__, exc_info=error)
        with self._idle:
            self._pending.discard(future)
            if not self._pending:
                self._idle.notify_all()


class LocalHandoff:
    """Jobs go to this process's post-ack pool (the core lives in the same process: tests, Socket Mode inline)."""

    def __init__(self, pool: PostAckPool, jobs: JobRunner) -> None:
        self._pool = pool
        self._jobs = jobs

    async def start(self) -> None:
        """Nothing to connect: the pool is already running."""

    async def close(self) -> None:
        """The core's ``close`` drains the pool; nothing to hand over."""

    def submit(self, job: Job) -> None:
        submit_job(self._pool, self._jobs, job)

    def is_available(self) -> bool:
        return True


def submit_job(pool: PostAckPool, jobs: JobRunner, job: Job) -> None:
    """Queue a job; new commands are shed past the backlog, other work never."""
    try:
        pool.submit(jobs.run, job, shed_when_busy=isinstance(job, CommandJob))
    except PoolBusy as busy:
        raise HandoffBusy(str(busy)) from None
    except RuntimeError as stopped:  # the pool is shutting down
        raise HandoffUnavailable(str(stopped)) from None
