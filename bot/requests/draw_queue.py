"""Drawing requests' messages off the caller's thread: the newest state wins, a final state is never overtaken.

Why: a ``chat.update`` is a Slack round trip (100–300 ms from most places, seconds when rate
limited), and the run engine used to make two of them between an Approve click and the
Kubernetes PATCH. Now the engine (and the click handlers) hand the board's drawing to this
queue and go on at once; a few daemon threads draw.

The rules that keep the message right:

- **One draw per request at a time**, in the order they were asked for: two threads never
  race two versions of one message to Slack.
- **Newest state wins**: a draw asked for while an older one of the same request still waits
  replaces it (a slow Slack gets the latest state, not a backlog of steps already done).
- **A final state is last**: once a request's final state (succeeded, failed, rolled back…)
  is queued, a draw of an earlier state of it (a click's redraw that read the row just
  before the run ended) is dropped, so the message never goes back to "running".

Drawing never raises into the caller: a failure is logged and the next draw of that request
tries again with whatever is newest.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from bot.runs.run_view import RunView
from bot.store.models import RequestRow
from bot.store.states import FINAL_STATES, RequestState

logger = logging.getLogger(__name__)

DRAW_THREADS = 4
"""Requests drawn at once (each draw is a database read and a Slack call)."""
REMEMBERED_FINALS = 4_096
"""Requests whose final state was queued, remembered so an older draw of them is dropped."""

Draw = Callable[[RequestRow, RunView | None], None]


@dataclass(frozen=True)
class _Job:
    row: RequestRow
    run: RunView | None
    then: tuple[Callable[[], None], ...] = ()
    """What to do once this draw is sent (an incident announcement follows the message's final state)."""


class DrawQueue:
    """Draws with ``draw(row, run)`` on its own threads; ``submit`` returns at once."""

    def __init__(self, draw: Draw, *, threads: int = DRAW_THREADS) -> None:
        self._draw = draw
        self._threads_wanted = threads
        self._threads: list[threading.Thread] = []
        self._waiting: OrderedDict[int, _Job] = OrderedDict()
        self._drawing: set[int] = set()
        self._finals: OrderedDict[int, None] = OrderedDict()
        self._changed = threading.Condition()
        self._closed = False

    def submit(self, row: RequestRow, run: RunView | None = None, *, then: Callable[[], None] | None = None) -> None:
        """Queue a draw of ``row`` (and a copy of ``run`` as it is now), replacing an older one still waiting.

        ``then`` runs on the drawing thread once the draw is sent (or failed), in the order asked.
        """
        final = RequestState(row.state) in FINAL_STATES
        snapshot = run.snapshot() if run is not None else None
        with self._changed:
            if self._closed:
                return
            if not final and row.id in self._finals:
                return  # the request's end is already queued or drawn: this older state must not follow it
            if final:
                self._remember_final(row.id)
            earlier = self._waiting.get(row.id)
            follow = (earlier.then if earlier is not None else ()) + ((then,) if then is not None else ())
            self._waiting[row.id] = _Job(row, snapshot, follow)  # an older waiting draw keeps its place in line
            self._start_threads()
            self._changed.notify()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Until every queued draw is done (tests and the shell, before they read what was drawn)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while self._waiting or self._drawing:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._changed.wait(remaining)
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Draw what is queued (for at most ``timeout`` seconds), then stop the threads."""
        self.wait_idle(timeout)
        with self._changed:
            self._closed = True
            self._waiting.clear()
            self._changed.notify_all()
        for thread in self._threads:
            thread.join(timeout=1)

    # -- the drawing threads ----------------------------------------------------------------

    def _start_threads(self) -> None:
        """Called with the lock held: threads start with the first draw (a process that never draws has none)."""
        if len(self._threads) >= self._threads_wanted:
            return
        thread = threading.Thread(target=self._draw_forever, name=f"opsbot-board-{len(self._threads)}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _draw_forever(self) -> None:
        while True:
            with self._changed:
                job = self._next_job()
                while job is None:
                    if self._closed:
                        return
                    self._changed.wait()
                    job = self._next_job()
            try:
                self._draw(job.row, job.run)
            except Exception:
                logger.exception("could not draw the message of request %s", job.row.id)
            try:
                for follow in job.then:
                    follow()
            except Exception:
                logger.exception("could not finish what follows the message of request %s", job.row.id)
            finally:
                with self._changed:
                    self._drawing.discard(job.row.id)
                    self._changed.notify_all()

    def _next_job(self) -> _Job | None:
        """The oldest waiting draw of a request not being drawn now (called with the lock held)."""
        for request_id in self._waiting:
            if request_id not in self._drawing:
                self._drawing.add(request_id)
                return self._waiting.pop(request_id)
        return None

    def _remember_final(self, request_id: int) -> None:
        self._finals[request_id] = None
        self._finals.move_to_end(request_id)
        while len(self._finals) > REMEMBERED_FINALS:
            self._finals.popitem(last=False)
