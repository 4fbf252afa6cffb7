"""A flood of commands is refused with "busy" once the pool's backlog is full; runs never are."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from bot.runner import PoolBusy
from bot.store.migrate import upgrade
from tests.fakes.core import FakeClock, make_touch_app


def test_new_commands_are_shed_past_the_backlog_but_other_work_still_queues(tmp_path: Path, sqlite_url: str) -> None:
    app, _ = make_touch_app(tmp_path, sqlite_url, FakeClock(), max_backlog=10)
    upgrade(app.database)
    release = threading.Event()
    try:
        for _ in range(10):
            app.runner.submit_task(release.wait, shed_when_busy=True)
        with pytest.raises(PoolBusy, match="10 tasks are already queued"):
            app.runner.submit_task(release.wait, shed_when_busy=True)
        app.runner.submit_task(release.wait)  # runs, approvals and clicks are never shed
    finally:
        release.set()
        assert app.runner.wait_idle(timeout=10)
        app.close()
