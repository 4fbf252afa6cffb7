"""The executor process: where ``opsbot serve`` does everything that happens after an ack.

Why a separate process: the HTTP workers must answer Slack in milliseconds, but the work after
the ack (the core, Slack Web API calls, runbook runs, the scheduler) is Python too. In the same
process it competes for the GIL and its garbage collector stops the event loop, so deferred
work still slowed the acks (see docs/benchmarks.md). Each HTTP worker only parses, acks and sends
a small ``Job`` over a Unix socket (``bot.serve.worker_handoff``); each executor owns a core
(post-ack pool, run engine, scheduler, housekeeping) and does the jobs.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import socketserver
import threading
from pathlib import Path
from typing import Any

from bot.api.jobs import ApiJob
from bot.logs import configure_logging
from bot.serve.pool import PostAckPool, submit_job
from bot.serve.process import settle_garbage_collector
from bot.serve.wiring import CoreJobRunner, build_core
from bot.serve.worker_handoff import FRAME_HEADER, MAX_FRAME_BYTES
from bot.settings import Settings
from bot.slack.jobs import CommandJob, HandoffBusy, HandoffUnavailable, Job, JobRunner
from bot.slack.notifier import SlackNotifier, make_web_client
from bot.slack.user_emails import SlackEmails
from bot.slack.usergroups import SlackUserGroups

logger = logging.getLogger(__name__)


class ExecutorServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """The executor's side: one reader thread per HTTP worker, each job queued in the core's pool."""

    daemon_threads = True

    def __init__(self, path: str, pool: PostAckPool, jobs: JobRunner, *, urgent: frozenset[str] = frozenset()) -> None:
        self.pool = pool
        self.jobs = jobs
        self.urgent = urgent
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

    def _dispatch(self, job: Job | ApiJob) -> None:
        try:
            submit_job(self.server.pool, self.server.jobs, job, urgent=self.server.urgent)
        except HandoffBusy:
            if isinstance(job, CommandJob):
                logger.warning("refused a %s command: the executor's pool is full (OPSBOT_MAX_BACKLOG)", job.parsed.command)
                self.server.jobs.refuse_busy(job)
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
    groups = SlackUserGroups(web, ttl_seconds=settings.group_cache_seconds, max_age_seconds=settings.group_max_age_seconds)
    core = build_core(settings, notifier=SlackNotifier(web), external_groups=groups)
    groups.share(core.database)
    if core.identities is not None:
        core.identities.use_emails(SlackEmails(web))
    server = ExecutorServer(socket_path, core.pool, CoreJobRunner(core, web), urgent=settings.urgent_command_names())
    stop = threading.Event()

    def request_stop(*_args: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    core.start_background()
    settle_garbage_collector()
    serving = threading.Thread(target=server.serve_forever, name="opsbot-executor", daemon=True)
    serving.start()
    logger.info("executor ready at %s", socket_path)
    try:
        stop.wait()
    finally:
        server.shutdown()
        server.server_close()
        Path(socket_path).unlink(missing_ok=True)
        core.close()  # waits for running work: a hard kill is recovered by another replica's sweep
        logger.info("executor stopped")
