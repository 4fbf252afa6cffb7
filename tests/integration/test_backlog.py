"""A flood of commands is refused with "busy" once the pool's backlog is full; runs never are."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from bot.serve.pool import PoolBusy
from bot.store.migrate import upgrade
from tests.doubles import FakeClock, make_touch_app


def test_new_commands_are_shed_past_the_backlog_but_other_work_still_queues(tmp_path: Path, sqlite_url: str) -> None:
    app, _ = make_touch_app(tmp_path, sqlite_url, FakeClock(), max_backlog=10)
    upgrade(app.database)
    release = threading.Event()
    try:
        for _ in range(10):
            app.pool.submit(release.wait, shed_when_busy=True)
        with pytest.raises(PoolBusy, match="10 tasks are already queued"):
            app.pool.submit(release.wait, shed_when_busy=True)
        app.pool.submit(release.wait)  # runs, approvals and clicks are never shed
    finally:
        release.set()
        assert app.wait_idle(timeout=10)
        app.close()


def test_long_runs_do_not_hold_up_the_work_after_an_ack(tmp_path: Path, sqlite_url: str) -> None:
    from bot.audit.events import Actor
    from bot.requests.invocation import Invocation
    from bot.settings import Settings
    from tests import doubles as core
    from tests.doubles import RecordingReplier

    threads = Settings(OPSBOT_DATABASE_URL=sqlite_url).runner_threads  # what make_touch_app's core runs with
    runs = threads + 4
    app, _ = make_touch_app(tmp_path, sqlite_url, FakeClock(), approvals=0, extra_services=runs)
    upgrade(app.database)
    core.STATE.release.clear()  # every run blocks in its step, like a rollout being watched
    answered = threading.Event()
    try:
        for index in range(runs):  # more runs than run threads, each on its own service
            invocation = Invocation(Actor("U0REQ", "requester"), "C0OPS", f"touch svc{index} v{index} in production")
            app.front_door.handle_command(invocation, RecordingReplier())
        deadline = time.monotonic() + 20
        while core.STATE.runs < threads and time.monotonic() < deadline:
            time.sleep(0.02)
        assert core.STATE.runs == threads, f"all {threads} run threads are busy with blocked runs, the other 4 wait"
        app.pool.submit(answered.set)  # e.g. someone's `/ops help` arriving meanwhile
        assert answered.wait(timeout=10), "post-ack work waited behind long runs"
    finally:
        core.STATE.release.set()
        app.wait_idle(timeout=30)
        app.close()
