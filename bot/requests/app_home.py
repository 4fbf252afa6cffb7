"""The App Home service: publish a person's home when they open it, and again when something of theirs changes.

Who hears what: the board tells this service about every request it draws (created, decided,
started, ended) and the lock built-ins about locks; the service works out whose home that
concerns (the requester, who voted, who may approve it, and for a lock everyone) among the
people who have opened the home at least once (``bot.store.home``), and publishes each of those
homes once a burst is over (``PublishSchedule``). Callers never wait: they queue a note and
return, one daemon thread reads the database and talks to Slack.

The Slack side is a ``HomeSurface`` (``bot.slack.home``): where there is none (the shell), the
service does nothing.
"""

from __future__ import annotations

import logging
import threading
import time
import zoneinfo
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, tzinfo

from bot.catalog.catalog import Catalog
from bot.messages import Message, Replier
from bot.requests.groups import GroupDirectory
from bot.requests.home import MAX_OPEN, MAX_RECENT, ActiveFreeze, HomeFacts, build_home
from bot.requests.home_schedule import PublishSchedule
from bot.requests.home_surface import HomeSurface, NotPublished, RateLimited
from bot.requests.policy import freeze_active, freeze_ends_at, freeze_starts_at
from bot.store import home as home_store
from bot.store.database import Database
from bot.store.models import RequestRow

logger = logging.getLogger(__name__)

NOTICE_SECONDS = 300.0
"""A click's answer stays at the top of the home this long (a home click has no channel to answer in)."""
PENDING_SCAN = 200
"""Pending requests looked at per home to find those the person may approve (membership is not SQL)."""


@dataclass(frozen=True)
class _RequestNote:
    request_id: int
    requester_id: str
    approver_groups: tuple[str, ...]


@dataclass(frozen=True)
class _Everyone:
    pass


@dataclass(frozen=True)
class _Person:
    user_id: str
    at_once: bool


class AppHome:
    """Publishes App Homes; every public method returns at once (the work is on its own thread)."""

    def __init__(
        self,
        *,
        database: Database,
        catalog: Catalog,
        groups: GroupDirectory,
        surface: HomeSurface | None,
        clock: Callable[[], datetime],
        schedule: PublishSchedule | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._database = database
        self._catalog = catalog
        self._groups = groups
        self._surface = surface
        self._clock = clock
        self._monotonic = monotonic
        self._schedule = schedule or PublishSchedule()
        self._notes: deque[_RequestNote | _Everyone | _Person] = deque()
        self._notices: dict[str, tuple[str, float]] = {}
        self._wake = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        return self._surface is not None

    # -- what changed (any thread) ------------------------------------------------------------

    def opened(self, user_id: str) -> None:
        """The person opened the home tab: remember them, publish their home now."""
        if self._surface is None:
            return
        with self._database.transaction() as session:
            home_store.remember_opened(session, user_id, self._clock())
        self._note(_Person(user_id, at_once=True))

    def request_changed(self, row: RequestRow) -> None:
        """A request was created, decided, started or ended: republish the homes it concerns."""
        if self._surface is not None:
            self._note(_RequestNote(row.id, row.requester_id, tuple(row.approver_groups)))

    def locks_changed(self) -> None:
        """A target was locked or unlocked: it shows on every home."""
        if self._surface is not None:
            self._note(_Everyone())

    def replier(self, user_id: str) -> Replier:
        """Answers a click made on the home, at the top of that home (there is no channel to answer in)."""
        return _HomeNotice(self, user_id)

    def tell(self, user_id: str, text: str) -> None:
        with self._wake:
            self._notices[user_id] = (text, self._monotonic())
        self._note(_Person(user_id, at_once=True))

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)

    # -- the publishing thread ---------------------------------------------------------------------

    def _note(self, note: _RequestNote | _Everyone | _Person) -> None:
        with self._wake:
            if self._closed:
                return
            self._notes.append(note)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="opsbot-app-home", daemon=True)
                self._thread.start()
            self._wake.notify_all()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._closed and not self._notes and not self._is_due():
                    self._wake.wait(timeout=self._wait_seconds())
                if self._closed:
                    return
                notes = list(self._notes)
                self._notes.clear()
            self._schedule_notes(notes)
            with self._wake:
                due = self._schedule.due(self._monotonic())
            for user_id in due:
                self._publish_quietly(user_id)

    def _is_due(self) -> bool:
        next_at = self._schedule.next_at()
        return next_at is not None and next_at <= self._monotonic()

    def _wait_seconds(self) -> float | None:
        next_at = self._schedule.next_at()
        return None if next_at is None else max(0.0, next_at - self._monotonic())

    def _schedule_notes(self, notes: list[_RequestNote | _Everyone | _Person]) -> None:
        try:
            people = self._concerned(notes)
        except Exception:
            logger.exception("could not work out whose App Home changed")
            return
        now = self._monotonic()
        with self._wake:
            for user_id, at_once in people.items():
                self._schedule.changed(user_id, now, after=0.0 if at_once else None)

    def _concerned(self, notes: list[_RequestNote | _Everyone | _Person]) -> dict[str, bool]:
        """Person → whether to publish at once (they opened the home, or a click of theirs is answered)."""
        people: dict[str, bool] = {note.user_id: True for note in notes if isinstance(note, _Person)}
        requests = [note for note in notes if isinstance(note, _RequestNote)]
        everyone = any(isinstance(note, _Everyone) for note in notes)
        if not requests and not everyone:
            return people
        with self._database.reading() as session:
            viewers = home_store.viewers(session)
            voted = {note.request_id: home_store.voters(session, note.request_id) for note in requests}
        concerned: set[str] = set(viewers) if everyone else set()
        for note in requests:
            concerned |= {note.requester_id, *voted[note.request_id]} & viewers
            concerned |= {viewer for viewer in viewers if self._groups.is_member(viewer, note.approver_groups)}
        for user_id in concerned:
            people.setdefault(user_id, False)
        return people

    def _publish_quietly(self, user_id: str) -> None:
        try:
            self._publish(user_id)
        except Exception:
            logger.exception("could not publish the App Home of %s", user_id)

    def _publish(self, user_id: str) -> None:
        assert self._surface is not None
        known = self._surface.time_zone_of(user_id)
        zone = _zone(known or "UTC")
        zone_name = known if known and str(zone) == known else "UTC, as Slack did not say yours"
        now = self._clock()
        view = build_home(self.facts(user_id, now), now=now, zone=zone, zone_name=zone_name, notice=self._notice(user_id))
        outcome = self._surface.publish_home(view)
        moment = self._monotonic()
        if isinstance(outcome, RateLimited):
            logger.info("views.publish was rate limited; the App Home of %s waits %.0f s", user_id, outcome.retry_after)
            with self._wake:
                self._schedule.rate_limited(user_id, moment, outcome.retry_after)
            return
        if isinstance(outcome, NotPublished):
            logger.warning("the App Home of %s was not published: %s", user_id, outcome.reason)
            return
        with self._database.transaction() as session:
            home_store.record_published(session, user_id, outcome.view_id, self._clock())
        with self._wake:
            self._schedule.published(user_id, moment)
            if view.stale_at is not None:
                self._schedule.changed(user_id, moment, after=max(0.0, (view.stale_at - now).total_seconds()) + 1.0)

    def facts(self, user_id: str, now: datetime) -> HomeFacts:
        """The rows of the person's home, as of ``now``."""
        with self._database.reading() as session:
            own_open, own_total = home_store.open_requests_of(session, user_id, MAX_OPEN)
            pending = home_store.pending_for_others(session, user_id, now, PENDING_SCAN)
            mine = [row for row in pending if self._groups.is_member(user_id, tuple(row.approver_groups))]
            already = home_store.voted_on(session, user_id, [row.id for row in mine])
            locks = home_store.manual_locks(session, now)
            recent = home_store.touched_by(session, user_id, MAX_RECENT)
        windows = self._catalog.config.policy.freezes
        freezes = [ActiveFreeze(freeze, freeze_ends_at(freeze, now)) for freeze in windows if freeze_active(freeze, now)]
        starts = [freeze_starts_at(freeze, now) for freeze in windows if not freeze_active(freeze, now)]
        return HomeFacts(
            user_id=user_id,
            own_open=own_open,
            own_open_total=own_total,
            to_approve=[row for row in mine if row.id not in already],
            locks=locks,
            freezes=freezes,
            recent=recent,
            next_freeze_start=min(starts) if starts else None,
        )

    def _notice(self, user_id: str) -> str | None:
        with self._wake:
            notice = self._notices.get(user_id)
            if notice is None:
                return None
            if self._monotonic() - notice[1] > NOTICE_SECONDS:
                del self._notices[user_id]
                return None
            return notice[0]


class _HomeNotice:
    """``Replier`` for a click on the home: the answer goes at the top of the person's home."""

    def __init__(self, home: AppHome, user_id: str) -> None:
        self._home = home
        self._user_id = user_id

    def private(self, message: Message) -> None:
        self._home.tell(self._user_id, message.text)


def _zone(name: str) -> tzinfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")
