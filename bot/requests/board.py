"""The board: the one place that draws a request's message and keeps it up to date.

A request has one message, posted when it is created and updated in place from ask to
result; its thread carries step details; failures are announced in the incident channel.
The run engine reports to the board through ``RunObserver`` and never writes text itself.

Every time the board draws a request for a change of its state (created, decided, started,
ended; not for a progress line), it also tells the App Home (``bot.requests.app_home``), which
republishes the homes that request concerns: one observer point for both surfaces.

Redraws happen on the board's own threads (``bot.requests.draw_queue``): a run, or a click,
never waits for Slack to redraw a message; the newest state is drawn and the final one last.
Only the first post waits, because its answer says where the message lives.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

from bot.catalog.catalog import Catalog
from bot.messages import Message, MessageRef, Notifier, escape, mention
from bot.requests.app_home import AppHome
from bot.requests.approvals import votes_of
from bot.requests.draw_queue import DrawQueue
from bot.requests.views import STATE_WORDS, request_message
from bot.runs.run_view import RunView
from bot.store import requests as request_store
from bot.store.database import Database
from bot.store.models import RequestRow
from bot.store.states import RequestState

logger = logging.getLogger(__name__)

MAX_THREAD_DETAIL_CHARS = 2_800
"""Longer step details go to the thread as a file (a section holds 3,000 characters)."""
UPDATE_INTERVAL_SECONDS = 1.0
"""``chat.update`` is rate limited (Tier 3): progress lines redraw a message at most once a second."""


class RequestBoard:
    """Draws requests for people; implements ``bot.runs.run_view.RunObserver``."""

    def __init__(
        self,
        *,
        catalog: Catalog,
        database: Database,
        notifier: Notifier,
        clock: Callable[[], datetime],
        retry_seconds: float = 60.0,
        home: AppHome | None = None,
    ) -> None:
        self._catalog = catalog
        self._home = home
        self._database = database
        self._notifier = notifier
        self._clock = clock
        self._retry_seconds = retry_seconds
        self._last_drawn: dict[int, float] = {}
        self._lock = threading.Lock()
        self._draws = DrawQueue(self._draw_now)

    # -- drawing ------------------------------------------------------------------------

    def post(self, row: RequestRow, now: datetime) -> MessageRef | None:
        """The request's first message, in its channel, drawn as of ``now`` (its creation); None if it could not be posted."""
        target = self._catalog.describe_target(row.service, row.env)
        posted = self._notifier.post(row.channel, request_message(row, target=target, now=now))
        self._tell_home(row)
        return posted

    def redraw(self, row: RequestRow, run: RunView | None = None) -> None:
        """Redraw a request's message from the database (and the live run, when one is going) after a change of state."""
        self._tell_home(row)
        self._draw(row, run)

    def locks_changed(self) -> None:
        """A person locked or unlocked a target: every App Home lists locks in force."""
        if self._home is not None:
            self._home.locks_changed()

    def _tell_home(self, row: RequestRow) -> None:
        if self._home is not None:
            self._home.request_changed(row)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Until every redraw asked for so far has been sent."""
        return self._draws.wait_idle(timeout)

    def close(self) -> None:
        """Send the redraws still queued (briefly), then stop drawing."""
        self._draws.close()

    def _draw(self, row: RequestRow, run: RunView | None = None, *, then: Callable[[], None] | None = None) -> None:
        """Queue the redraw; ``then`` follows it (at once when the request has no message)."""
        if row.message_ref is not None:
            self._draws.submit(row, run, then=then)
        elif then is not None:
            then()

    def _draw_now(self, row: RequestRow, run: RunView | None) -> None:
        """On a drawing thread: the votes as stored now, the row and run as they were when the draw was asked for."""
        ref = MessageRef.from_dict(row.message_ref)
        if ref is None:
            return
        votes = self._database.retry_while_unreachable(
            f"read the votes of request {row.id}", lambda: votes_of(self._database, row.id), for_seconds=self._retry_seconds
        )
        target = self._catalog.describe_target(row.service, row.env)
        self._notifier.update(ref, request_message(row, votes=votes, run=run, target=target, now=self._clock()))

    def redraw_by_id(self, request_id: int) -> None:
        with self._database.reading() as session:
            row = request_store.get_request(session, request_id)
        if row is not None:
            self.redraw(row)

    def note(self, row: RequestRow, text: str) -> None:
        """A line (mrkdwn built by opsbot) in the request's thread; long text as a file there."""
        ref = MessageRef.from_dict(row.message_ref)
        if ref is None:
            return
        if len(text) > MAX_THREAD_DETAIL_CHARS:
            self._notifier.upload(ref.channel, f"request-{row.id}-details.txt", text, thread=ref)
            return
        self._notifier.post(ref.channel, Message.plain(text), thread=ref)

    def announce(self, row: RequestRow, text: str) -> None:
        """Tell the service's incident channel (or the config's), if there is one."""
        service = self._catalog.config.services.get(row.service)
        channel = (service.incident_channel if service else None) or self._catalog.config.channels.incident
        if channel:
            self._notifier.post(channel, Message.plain(text))

    # -- RunObserver ----------------------------------------------------------------------

    def run_started(self, row: RequestRow, run: RunView) -> None:
        self._draw_run(row, run)

    def run_progressed(self, row: RequestRow, run: RunView, *, milestone: bool) -> None:
        now = time.monotonic()
        with self._lock:
            if not milestone and now - self._last_drawn.get(row.id, 0.0) < UPDATE_INTERVAL_SECONDS:
                return
            self._last_drawn[row.id] = now
        self._draw(row, run)  # progress is not a change of state: the App Home shows none of it

    def step_details(self, row: RequestRow, title: str, lines: tuple[str, ...]) -> None:
        self.note(row, f"*{escape(title)}*\n" + "\n".join(escape(line) for line in lines))

    def run_finished(self, row: RequestRow, run: RunView) -> None:
        with self._lock:
            self._last_drawn.pop(row.id, None)
        self._tell_home(row)
        # The incident channel hears about failures that touched a service, not about a Stop, a run
        # refused at its start, or a read-only step that could not reach a cluster; after the message says so.
        if row.state in (RequestState.FAILED, RequestState.ROLLED_BACK) and run.touched:
            self._draw(row, run, then=lambda: self.announce(row, failure_announcement(row)))
        else:
            self._draw(row, run)

    def run_not_started(self, row: RequestRow) -> None:
        self.redraw(row)

    def run_interrupted(self, row: RequestRow) -> None:
        self._tell_home(row)
        self._draw(row, then=lambda: self._tell_interrupted(row))

    def _tell_interrupted(self, row: RequestRow) -> None:
        self.note(row, f"⚠️ Interrupted: {escape(row.result or '')}.")
        self.announce(
            row,
            f"⚠️ {escape(row.runbook)} {escape(row.service)} in {escape(row.env)} (#{row.id}) was interrupted: {escape(row.result or '')}.",
        )

    def _draw_run(self, row: RequestRow, run: RunView) -> None:
        with self._lock:
            self._last_drawn[row.id] = time.monotonic()
        self.redraw(row, run)


def failure_announcement(row: RequestRow) -> str:
    """``❌ deploy checkout in production (#12, asked by @alice) failed: …`` for the incident channel."""
    state = RequestState(row.state)
    icon = "↩️" if state == RequestState.ROLLED_BACK else "❌"
    return (
        f"{icon} {escape(row.runbook)} {escape(row.service)} in {escape(row.env)} (#{row.id}, asked by {mention(row.requester_id)}) "
        f"{STATE_WORDS[state]}: {escape(row.result or '')}"
    )
