"""Periodic housekeeping every replica runs: expire stale approvals, recover dead runs, forget old deliveries.

Safe on several replicas at once because each change is a conditional UPDATE: two
replicas expiring the same request produce one ``expired`` transition between them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from bot.runs.engine import RunEngine
from bot.store.database import Database
from bot.store.models import RequestRow
from bot.store.replays import forget_old

logger = logging.getLogger(__name__)

ExpireDue = Callable[[datetime], list[RequestRow]]
"""Moves every pending request past its deadline to ``expired``; returns those that moved (``bot.requests.approvals``)."""


class Maintenance:
    """A daemon thread that sweeps every ``interval`` seconds until stopped."""

    def __init__(
        self,
        *,
        database: Database,
        engine: RunEngine,
        expire_due: ExpireDue,
        redraw: Callable[[RequestRow], None],
        clock: Callable[[], datetime],
        interval: float = 15.0,
    ) -> None:
        self._database = database
        self._engine = engine
        self._expire_due = expire_due
        self._redraw = redraw
        self._clock = clock
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sweep(self) -> None:
        """One pass: expire due approvals (and redraw their messages), recover abandoned runs."""
        for row in self._expire_due(self._clock()):
            self._redraw(row)
        self._engine.recover()
        with self._database.transaction() as session:
            forget_old(session, self._clock())

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="opsbot-maintenance", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.sweep()
            except Exception:
                logger.warning("maintenance sweep failed; will retry", exc_info=True)
