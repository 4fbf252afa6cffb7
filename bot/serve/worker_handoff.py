"""The HTTP worker's end of the handoff: jobs, framed and pickled, to the executor processes over Unix sockets.

Wire format: a 4-byte big-endian length, then a pickle of the job. Pickle is only safe between
trusting peers: each socket lives in a directory only this user can open (0700), created by
``opsbot serve`` for its own children (``bot.serve.supervisor``). The executor's end is
``bot.serve.executor``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import pickle
import struct
import time
from typing import cast

from bot.api.jobs import ApiJob
from bot.serve.fair_queue import FairQueue, QueueFull
from bot.slack.jobs import CommandJob, HandoffBusy, HandoffUnavailable, Job, ShedJob

logger = logging.getLogger(__name__)

FRAME_HEADER = struct.Struct(">I")
MAX_FRAME_BYTES = 2_000_000
SEND_QUEUE_SIZE = 2_000
FLUSH_BATCH = 256
"""Frames per ``write``: under a burst, one system call carries many jobs."""
RECONNECT_SECONDS = 0.2
CLOSE_FLUSH_SECONDS = 10.0


class SocketHandoff:
    """The HTTP worker's side of one executor, driven by the worker's event loop.

    ``submit`` (called by the listeners, on the loop) pickles the job and queues its frame;
    one flush per loop iteration writes every queued frame in a single ``write`` on an asyncio
    Unix-socket transport. No thread: a sender thread woken for every job competed with the
    event loop for the GIL (measured with benchmarks/ack.py, see docs/benchmarks.md).

    New commands wait in a bounded ``FairQueue`` (people in turn; when it is full, the person
    with the most queued gives way, and ``HandoffBusy`` only for that person: the ack says "busy");
    clicks, notices, audit records and urgent commands go first and are never refused for room,
    because a click dropped here would leave its person with no answer at all. While the executor reads slower
    than jobs arrive, the transport pauses writing and frames wait here, in that order. While no
    executor is connected, ``submit`` says ``HandoffUnavailable`` and a reconnect is retried
    every 0.2 s (frames already handed to a transport that then broke are lost with the
    executor, which stops the pod anyway; see ``opsbot serve``).
    """

    def __init__(self, path: str, *, queue_size: int = SEND_QUEUE_SIZE, urgent: frozenset[str] = frozenset()) -> None:
        self._path = path
        self._limit = queue_size
        self._urgent = urgent
        self._commands: FairQueue[tuple[bytes, CommandJob]] = FairQueue()
        self._first: collections.deque[bytes] = collections.deque()
        self._link: _ExecutorLink | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flush_scheduled = False
        self._closing = False
        self._reconnecting: asyncio.Task[bool] | None = None

    async def start(self) -> None:
        await self.connect()

    async def connect(self, *, wait_seconds: float = 30.0) -> None:
        """Connect on the running loop; if the executor is not up within ``wait_seconds``, keep trying in the background."""
        self._loop = asyncio.get_running_loop()
        if not await self._connect_until(time.monotonic() + wait_seconds):
            logger.error("could not reach the executor at %s within %.0f s", self._path, wait_seconds)
            self._reconnect_in_background()

    def submit(self, job: Job | ApiJob) -> None:
        if self._link is None:
            raise HandoffUnavailable("the executor process is not reachable")
        frame = _frame(job)
        if isinstance(job, CommandJob) and job.parsed.command not in self._urgent:
            try:
                shed = self._commands.put(job.invocation.actor.user_id, (frame, job), full=len(self._commands) >= self._limit)
            except QueueFull:
                raise HandoffBusy(f"{self._limit} jobs are waiting to reach the executor") from None
            if shed is not None:  # someone with more queued gave way: the executor tells them "busy" and audits it
                self._first.append(_frame(ShedJob(shed[1])))
        else:
            self._first.append(frame)
        self._schedule_flush()

    def is_available(self) -> bool:
        return self._link is not None

    async def close(self) -> None:
        """Write what is queued (while the executor still reads, up to 10 s), then disconnect."""
        self._closing = True
        if self._reconnecting is not None:
            self._reconnecting.cancel()
        deadline = time.monotonic() + CLOSE_FLUSH_SECONDS
        while self._link is not None and (self._first or self._commands) and time.monotonic() < deadline:
            self._flush()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._link.drained(), timeout=max(0.0, deadline - time.monotonic()))
        if self._first or self._commands:
            logger.error("stopped with %d jobs not handed to the executor at %s", len(self._first) + len(self._commands), self._path)
        if self._link is not None:
            self._link.transport.close()

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled and self._loop is not None:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        link = self._link
        while link is not None and not link.paused and (self._first or self._commands):
            batch: list[bytes] = []
            while self._first and len(batch) < FLUSH_BATCH:
                batch.append(self._first.popleft())
            while self._commands and len(batch) < FLUSH_BATCH:
                batch.append(self._commands.pop()[0])
            link.transport.write(b"".join(batch))

    def _resumed(self) -> None:
        self._schedule_flush()

    def _lost(self, error: Exception | None) -> None:
        self._link = None
        if self._closing:
            return
        logger.warning("lost the connection to the executor at %s (%s); reconnecting", self._path, error or "closed by the executor")
        self._reconnect_in_background()

    def _reconnect_in_background(self) -> None:
        if self._loop is not None and (self._reconnecting is None or self._reconnecting.done()):
            self._reconnecting = self._loop.create_task(self._connect_until(None))

    async def _connect_until(self, deadline: float | None) -> bool:
        assert self._loop is not None
        while not self._closing and (deadline is None or time.monotonic() < deadline):
            try:
                _transport, link = await self._loop.create_unix_connection(lambda: _ExecutorLink(self), self._path)
            except OSError:
                await asyncio.sleep(RECONNECT_SECONDS)
                continue
            self._link = link
            self._schedule_flush()
            return True
        return False


def _frame(job: Job | ApiJob) -> bytes:
    payload = pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL)
    return FRAME_HEADER.pack(len(payload)) + payload


class _ExecutorLink(asyncio.Protocol):
    """One connection to an executor: flow control and loss, reported to its ``SocketHandoff``."""

    def __init__(self, handoff: SocketHandoff) -> None:
        self._handoff = handoff
        self.transport: asyncio.WriteTransport
        self.paused = False
        self._resumed = asyncio.Event()
        self._resumed.set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio's, but they have the WriteTransport interface.
        self.transport = cast(asyncio.WriteTransport, transport)

    def pause_writing(self) -> None:
        self.paused = True
        self._resumed.clear()

    def resume_writing(self) -> None:
        self.paused = False
        self._resumed.set()
        self._handoff._resumed()

    def connection_lost(self, exc: Exception | None) -> None:
        self.paused = True
        self._resumed.set()
        self._handoff._lost(exc)

    async def drained(self) -> None:
        """Until the transport's buffer is below its high-water mark (or the connection is gone)."""
        await self._resumed.wait()


class SpreadHandoff:
    """Several executors: jobs go round-robin to those that are connected.

    One executor is one interpreter (one core's worth of Python); a pod with two cores does
    twice the post-ack work with two. Each executor runs its own scheduler and sweeps, which
    coordinate through the database exactly like replicas do.
    """

    def __init__(self, paths: list[str], *, urgent: frozenset[str] = frozenset()) -> None:
        self._handoffs = [SocketHandoff(path, urgent=urgent) for path in paths]
        self._next = itertools.count()

    async def start(self) -> None:
        await asyncio.gather(*(handoff.connect() for handoff in self._handoffs))

    def submit(self, job: Job | ApiJob) -> None:
        first = next(self._next)
        refusal: Exception = HandoffUnavailable("no executor process is reachable")
        for offset in range(len(self._handoffs)):
            handoff = self._handoffs[(first + offset) % len(self._handoffs)]
            try:
                handoff.submit(job)
                return
            except (HandoffBusy, HandoffUnavailable) as refused:
                refusal = refused
        raise refusal

    def is_available(self) -> bool:
        return any(handoff.is_available() for handoff in self._handoffs)

    async def close(self) -> None:
        await asyncio.gather(*(handoff.close() for handoff in self._handoffs))
