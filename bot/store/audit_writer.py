"""Group commit for standalone audit events: many threads, one transaction, one fsync.

Why: every append locks the chain's head row until its transaction commits, and a commit
waits for the disk, so one append per transaction has a ceiling whatever the concurrency
(measured by benchmarks/audit.py, see docs/benchmarks.md). Events that record a state
change are still appended inside that change's own transaction (``append_events``), so the
two commit together. Everything else — step started/finished, progress lines, refusals —
goes through this writer: callers block until their event is durable, but the events of all
threads waiting at that moment share one transaction.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from datetime import datetime

from bot.audit.events import AuditEvent
from bot.store import audit as audit_store
from bot.store.database import Database

logger = logging.getLogger(__name__)

MAX_BATCH = 500
WAIT_SECONDS = 120.0


class AuditWriter:
    """A daemon thread that commits queued events in batches, in the order they were queued."""

    def __init__(self, database: Database, clock: Callable[[], datetime], *, retry_seconds: float = 60.0) -> None:
        self._database = database
        self._clock = clock
        self._retry_seconds = retry_seconds
        self._queue: list[tuple[tuple[AuditEvent, ...], Future[None]]] = []
        self._wake = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="opsbot-audit-writer", daemon=True)
        self._thread.start()

    def append(self, *events: AuditEvent, timeout: float = WAIT_SECONDS) -> None:
        """Return once ``events`` (kept together, in order) are committed to the chain; raise if not."""
        future: Future[None] = Future()
        with self._wake:
            if self._closed:
                raise RuntimeError("the audit writer is closed")
            self._queue.append((events, future))
            self._wake.notify()
        future.result(timeout=timeout)

    def close(self) -> None:
        """Commit what is queued, then stop."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join(timeout=WAIT_SECONDS)

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._queue and not self._closed:
                    self._wake.wait()
                if not self._queue and self._closed:
                    return
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            self._commit(batch)

    def _commit(self, batch: list[tuple[tuple[AuditEvent, ...], Future[None]]]) -> None:
        events = [event for group, _ in batch for event in group]

        def write() -> None:
            with self._database.transaction() as session:
                audit_store.append_events(session, events, self._clock())

        try:
            self._database.retry_while_unreachable(f"append {len(events)} audit events", write, for_seconds=self._retry_seconds)
        except Exception as error:  # noqa: BLE001 - every waiting caller gets the error; the writer keeps going
            for _, future in batch:
                future.set_exception(error)
            return
        for _, future in batch:
            future.set_result(None)
