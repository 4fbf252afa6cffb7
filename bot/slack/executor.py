"""The executor process: where `opsbot serve` does everything that happens after an ack.

Why a separate process: the HTTP workers must answer Slack in milliseconds, but the work
after the ack (the core, Slack Web API calls, runbook runs, the scheduler) is Python too.
In the same process it competes for the GIL and its garbage collector stops the event loop,
so deferred work still slowed the acks (measured in benchmarks/ack.py). Now each HTTP worker
only parses, acks and sends a small ``Job`` over a Unix socket; one executor process per pod
owns the core (worker pool, scheduler, housekeeping) and does the jobs.

Wire format: a 4-byte big-endian length, then a pickle of the job. Pickle is only safe
between trusting peers: the socket lives in a directory only this user can open (0700),
created by `opsbot serve` for its own children.
"""

from __future__ import annotations

import collections
import gc
import itertools
import logging
import os
import pickle
import signal
import socket
import socketserver
import struct
import threading
import time
from pathlib import Path
from typing import Any

from bot.app import build_app
from bot.logs import configure_logging
from bot.runner import Runner
from bot.settings import Settings
from bot.slack.jobs import CommandJob, HandoffBusy, HandoffUnavailable, Job, JobRunner, submit_to_pool
from bot.slack.notifier import SlackNotifier, make_web_client
from bot.slack.usergroups import SlackUserGroups

logger = logging.getLogger(__name__)

FRAME_HEADER = struct.Struct(">I")
MAX_FRAME_BYTES = 2_000_000
SEND_QUEUE_SIZE = 2_000
BUSY_TEXT = "opsbot is busy with a burst of commands and could not take that one; nothing was done. Try again in a few seconds."


class SocketHandoff:
    """The HTTP worker's side of one executor: queue a job without blocking; a sender thread writes it.

    ``submit`` is called on the event loop, so it only appends the job to a queue. New commands
    wait in a bounded queue (``HandoffBusy`` when full: the ack says "busy"); clicks, notices
    and audit records go first and are never refused for room, because a click dropped here
    would leave its person with no answer at all. The sender thread pickles and writes,
    reconnecting when the executor restarts; while it cannot connect, ``submit`` says
    ``HandoffUnavailable``.
    """

    def __init__(self, path: str, *, queue_size: int = SEND_QUEUE_SIZE) -> None:
        self._path = path
        self._limit = queue_size
        self._commands: collections.deque[Job] = collections.deque()
        self._first: collections.deque[Job] = collections.deque()
        self._wake = threading.Condition()
        self._connected = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._send_forever, name="opsbot-handoff", daemon=True)

    def start(self, *, wait_seconds: float = 30.0) -> None:
        self._thread.start()
        if not self._connected.wait(wait_seconds):
            logger.error("could not reach the executor at %s within %.0f s", self._path, wait_seconds)

    def submit(self, job: Job) -> None:
        if not self._connected.is_set():
            raise HandoffUnavailable("the executor process is not reachable")
        with self._wake:
            if isinstance(job, CommandJob):
                if len(self._commands) >= self._limit:
                    raise HandoffBusy(f"{self._limit} jobs are waiting to reach the executor")
                self._commands.append(job)
            else:
                self._first.append(job)
            self._wake.notify()

    def is_available(self) -> bool:
        return self._connected.is_set()

    def close(self) -> None:
        self._stopping.set()
        with self._wake:
            self._wake.notify()
        self._thread.join(timeout=10)

    def _next_job(self) -> Job | None:
        with self._wake:
            while not self._first and not self._commands:
                if self._stopping.is_set():
                    return None
                self._wake.wait()
            return self._first.popleft() if self._first else self._commands.popleft()

    def _send_forever(self) -> None:
        pending: Job | None = None
        while not self._stopping.is_set():
            connection = self._connect()
            if connection is None:
                continue
            try:
                with connection:
                    while True:
                        job = pending if pending is not None else self._next_job()
                        if job is None:
                            return
                        pending = job
                        payload = pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL)
                        connection.sendall(FRAME_HEADER.pack(len(payload)) + payload)
                        pending = None
            except OSError:
                self._connected.clear()
                logger.warning("lost the connection to the executor; reconnecting")

    def _connect(self) -> socket.socket | None:
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            connection.connect(self._path)
        except OSError:
            connection.close()
            self._connected.clear()
            time.sleep(0.2)
            return None
        self._connected.set()
        return connection


class SpreadHandoff:
    """Several executors: jobs go round-robin to those that are connected.

    One executor is one interpreter (one core's worth of Python); a pod with two cores does
    twice the post-ack work with two. Each executor runs its own scheduler and sweeps, which
    coordinate through the database exactly like replicas do.
    """

    def __init__(self, paths: list[str]) -> None:
        self._handoffs = [SocketHandoff(path) for path in paths]
        self._next = itertools.count()

    def start(self) -> None:
        for handoff in self._handoffs:
            handoff.start()

    def submit(self, job: Job) -> None:
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

    def close(self) -> None:
        for handoff in self._handoffs:
            handoff.close()


class ExecutorServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """The executor's side: one reader thread per HTTP worker, each job queued in the core's pool."""

    daemon_threads = True

    def __init__(self, path: str, runner: Runner, jobs: JobRunner) -> None:
        self.runner = runner
        self.jobs = jobs
        super().__init__(path, _JobReader)


class _JobReader(socketserver.StreamRequestHandler):
    server: ExecutorServer

    def handle(self) -> None:
        while True:
            header = self.rfile.read(FRAME_HEADER.size)
            if len(header) < FRAME_HEADER.size:
                return
            (size,) = FRAME_HEADER.unpack(header)
            if size > MAX_FRAME_BYTES:
                logger.error("dropped a %d-byte frame from an HTTP worker; closing its connection", size)
                return
            job = pickle.loads(self.rfile.read(size))  # noqa: S301 - a peer of our own, over a 0700 socket
            self._dispatch(job)

    def _dispatch(self, job: Job) -> None:
        try:
            submit_to_pool(self.server.runner, self.server.jobs, job)
        except HandoffBusy:
            if isinstance(job, CommandJob):
                logger.warning("refused a %s command: the executor's pool is full (OPSBOT_MAX_BACKLOG)", job.parsed.command)
                self.server.jobs.refuse_busy(job, BUSY_TEXT)
        except HandoffUnavailable:
            logger.error("dropped a job: the executor is shutting down")


def run_executor(socket_path: str) -> None:
    """The executor process's main: build the core, serve jobs until SIGTERM, then finish running work."""
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    # Acks first: when the CPU is short, the kernel should run the HTTP workers (3-second
    # deadline) before the work that comes after an ack. A niced executor still uses every idle cycle.
    os.nice(settings.executor_nice)
    web = make_web_client(settings)
    opsbot = build_app(settings, notifier=SlackNotifier(web), external_groups=SlackUserGroups(web))
    server = ExecutorServer(socket_path, opsbot.runner, JobRunner(opsbot.operations, web))
    stop = threading.Event()

    def request_stop(*_args: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    opsbot.start_background()
    gc.collect()
    gc.freeze()
    serving = threading.Thread(target=server.serve_forever, name="opsbot-executor", daemon=True)
    serving.start()
    logger.info("executor ready at %s", socket_path)
    try:
        stop.wait()
    finally:
        server.shutdown()
        server.server_close()
        Path(socket_path).unlink(missing_ok=True)
        opsbot.close()  # waits for running work: a hard kill is recovered by another replica's sweep
        logger.info("executor stopped")
