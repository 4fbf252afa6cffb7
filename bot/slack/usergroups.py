"""Slack user groups as policy groups: ``@handle`` or ``S…`` → member user ids, cached.

Why a cache with a TTL: ``usergroups.users.list`` is rate tier 2 (about 20 calls a minute)
and the policy asks on every request and every approval click. Why serve a stale value when
Slack fails: a Slack hiccup should not lock the on-call team out of a rollback, and a
membership a few minutes old is what the cache serves anyway — but only up to ``max_age``
(``OPSBOT_GROUP_MAX_AGE_SECONDS``, default twice the TTL): past that an approver removed from
the group must not keep approving, so the group counts as empty (fail closed). Why fail
closed when nothing was ever loaded: an unknown membership must grant nothing (the
``GroupDirectory`` turns the raised error into an empty group).

Why the database: every executor process and replica asks the same question; once ``share``
is called the answer lives in ``group_members`` (one fetch serves all, and a
``subteam_members_changed`` event handled by any process invalidates it for all at once).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.metrics import record_slack_error
from bot.store import group_members as shared_store
from bot.store.database import Database

logger = logging.getLogger(__name__)

DEFAULT_TTL_SECONDS = 300.0
GONE_ERRORS = frozenset({"no_such_subteam", "subteam_not_found"})
"""Answers that are definitive (the group was deleted): cached as empty, not retried as failures."""

T = TypeVar("T")


class GroupLookupFailed(Exception):
    """Slack could not be asked and nothing was cached: the group counts as empty (fail closed)."""


@dataclass(frozen=True)
class _Entry(Generic[T]):
    value: T
    fetched_at: float


class SlackUserGroups:
    """An ``ExternalGroupResolver`` backed by ``usergroups.list`` and ``usergroups.users.list``."""

    def __init__(
        self,
        client: WebClient,
        *,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        max_age_seconds: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._max_age = max_age_seconds if max_age_seconds is not None else 2 * ttl_seconds
        self._clock = clock
        self._database: Database | None = None
        self._lock = threading.Lock()
        self._share_lock = threading.Lock()
        self._epoch = 0
        """Moves on every invalidation; a share of members fetched before it is dropped."""
        self._fetching: dict[str, threading.Lock] = {}
        self._handles: _Entry[dict[str, str]] | None = None
        self._members: dict[str, _Entry[frozenset[str]]] = {}

    def __call__(self, reference: str) -> frozenset[str]:
        """Members of ``@handle`` or ``S…``; raises ``GroupLookupFailed`` if Slack fails and nothing is cached."""
        group_id = self._group_id(reference)
        if group_id is None:
            logger.warning("Slack user group %s does not exist; it has no members", reference)
            return frozenset()
        return self._cached(
            f"members:{group_id}", lambda: self._current_members(group_id), self._store_members(group_id), self._fetch_members(group_id)
        )

    def _share_unless_invalidated(self, database: Database, group_id: str, entry: _Entry[frozenset[str]], epoch: int) -> None:
        with self._share_lock:
            if self._epoch == epoch:
                _share_members(database, group_id, entry)

    def share(self, database: Database) -> None:
        """Keep member lists in the database, shared by every process (called once the core's database exists)."""
        self._database = database

    def invalidate(self, group_id: str | None = None) -> None:
        """Forget one group (a ``subteam_members_changed`` event) or everything, here and in the shared cache."""
        with self._lock:
            self._handles = None
            if group_id is None:
                self._members.clear()
            else:
                self._members.pop(group_id, None)
        with self._share_lock:
            # A share of members fetched before this event, still on its way to the database, must not
            # write them back after the forget: it sees the epoch move and drops its write.
            self._epoch += 1
            if self._database is not None:
                with self._database.transaction() as session:
                    shared_store.forget(session, group_id)

    # -- lookups -----------------------------------------------------------------------------

    def _group_id(self, reference: str) -> str | None:
        if not reference.startswith("@"):
            return reference
        handles = self._cached("handles", lambda: self._handles, self._store_handles, self._fetch_handles)
        return handles.get(reference[1:].lower())

    def _fetch_handles(self) -> dict[str, str]:
        response = self._client.usergroups_list(include_disabled=False, include_users=False, include_count=False)
        groups = response.get("usergroups") or []
        return {
            str(group["handle"]).lower(): str(group["id"])
            for group in groups
            if isinstance(group, dict) and group.get("handle") and group.get("id")
        }

    def _fetch_members(self, group_id: str) -> Callable[[], frozenset[str]]:
        def fetch() -> frozenset[str]:
            try:
                response = self._client.usergroups_users_list(usergroup=group_id, include_disabled=False)
            except SlackApiError as error:
                if error.response.get("error") in GONE_ERRORS:
                    return frozenset()
                raise
            return frozenset(str(user) for user in response.get("users") or [] if isinstance(user, str))

        return fetch

    # -- the cache ---------------------------------------------------------------------------

    def _store_handles(self, entry: _Entry[dict[str, str]]) -> None:
        self._handles = entry

    def _current_members(self, group_id: str) -> _Entry[frozenset[str]] | None:
        if self._database is None:
            return self._members.get(group_id)
        try:
            with self._database.reading() as session:
                found = shared_store.read(session, group_id)
        except Exception:
            logger.warning("could not read the shared group cache for %s; using this process's", group_id, exc_info=True)
            return self._members.get(group_id)
        return None if found is None else _Entry(found[0], found[1].timestamp())

    def _store_members(self, group_id: str) -> Callable[[_Entry[frozenset[str]]], None]:
        def store(entry: _Entry[frozenset[str]]) -> None:
            self._members[group_id] = entry
            database = self._database
            if database is None:
                return
            # In a thread of its own: the lookup may happen inside an approval's write transaction, and on
            # SQLite a second writer from this thread would wait for that very transaction to end.
            epoch = self._epoch
            threading.Thread(
                target=self._share_unless_invalidated, args=(database, group_id, entry, epoch), name=f"opsbot-group-{group_id}", daemon=True
            ).start()

        return store

    def _cached(
        self,
        key: str,
        current: Callable[[], _Entry[T] | None],
        store: Callable[[_Entry[T]], None],
        fetch: Callable[[], T],
    ) -> T:
        """Fresh cache, else one fetch per key at a time, else the stale value, else fail closed."""
        with self._lock:
            entry = current()
            if entry is not None and self._clock() - entry.fetched_at < self._ttl:
                return entry.value
            key_lock = self._fetching.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:  # another thread may have refreshed it while we waited
                entry = current()
                if entry is not None and self._clock() - entry.fetched_at < self._ttl:
                    return entry.value
            try:
                value = fetch()
            except Exception as error:  # noqa: BLE001 - any failure means: serve stale, or fail closed
                return self._stale_or_fail(key, entry, error)
            with self._lock:
                store(_Entry(value, self._clock()))
            return value

    def _stale_or_fail(self, key: str, entry: _Entry[T] | None, error: Exception) -> T:
        code = str(error.response.get("error")) if isinstance(error, SlackApiError) else type(error).__name__
        record_slack_error("usergroups.users.list" if key.startswith("members:") else "usergroups.list", code)
        age = None if entry is None else self._clock() - entry.fetched_at
        if entry is not None and age is not None and age < self._max_age:
            logger.warning("Slack user group lookup %s failed (%s); using the cached value from %.0fs ago", key, code, age)
            return entry.value
        if age is not None:
            logger.warning("Slack user group lookup %s failed (%s) and the cached value is %.0fs old; counting nobody", key, code, age)
            raise GroupLookupFailed(f"could not look up {key} in Slack ({code}) and the cached answer is too old") from error
        raise GroupLookupFailed(f"could not look up {key} in Slack ({code}) and nothing is cached") from error


def _share_members(database: Database, group_id: str, entry: _Entry[frozenset[str]]) -> None:
    try:
        with database.transaction() as session:
            shared_store.write(session, group_id, entry.value, datetime.fromtimestamp(entry.fetched_at, UTC))
    except Exception:
        logger.warning("could not store %s in the shared group cache", group_id, exc_info=True)
