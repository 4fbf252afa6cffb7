"""The App Home's SQL on SQLite and PostgreSQL: who opened it, which view, and the rows a person's home lists."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bot.store import home as home_store
from bot.store import locks as lock_store
from bot.store import requests as request_store
from bot.store.database import Database
from bot.store.states import RequestState

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def add_request(database: Database, requester: str, state: RequestState, *, minutes_ago: int = 5, **values: Any) -> int:
    fields: dict[str, Any] = {
        "runbook": "deploy", "service": "checkout", "env": "production", "target_kind": "kubernetes",
        "params": {"service": "checkout", "version": "1.4.2", "env": "production"}, "params_hash": "p" * 64, "plan": [],
        "plan_hash": "q" * 64, "state": str(state), "requester_id": requester, "requester_name": requester, "channel": "C0OPS",
        "approvals_required": 1, "approver_groups": ["oncall"], "expires_at": NOW + timedelta(minutes=30),
        "created_at": NOW - timedelta(minutes=minutes_ago), "updated_at": NOW - timedelta(minutes=minutes_ago),
    }  # fmt: skip
    fields.update(values)
    with database.transaction() as session:
        return request_store.create_request(session, **fields).id


def test_opening_remembers_the_person_and_publishing_the_view_they_were_shown(database: Database) -> None:
    with database.transaction() as session:
        home_store.remember_opened(session, "U0ONE", NOW)
        home_store.remember_opened(session, "U0ONE", NOW + timedelta(minutes=1))
        home_store.remember_opened(session, "U0TWO", NOW)
        home_store.record_published(session, "U0ONE", "V0000000007", NOW)

    with database.reading() as session:
        assert home_store.viewers(session) == {"U0ONE", "U0TWO"}
        assert home_store.viewers(session, among=["U0TWO", "U0NEVER"]) == {"U0TWO"}
        assert home_store.viewers(session, among=[]) == set()
        assert home_store.published_view(session, "U0ONE") == "V0000000007"
        assert home_store.published_view(session, "U0TWO") is None


def test_a_persons_open_requests_newest_first_with_the_total(database: Database) -> None:
    ids = [add_request(database, "U0ONE", RequestState.PENDING_APPROVAL) for _ in range(3)]
    add_request(database, "U0ONE", RequestState.SUCCEEDED)
    add_request(database, "U0TWO", RequestState.RUNNING)

    with database.reading() as session:
        rows, total = home_store.open_requests_of(session, "U0ONE", limit=2)

    assert [row.id for row in rows] == ids[::-1][:2] and total == 3


def test_pending_requests_of_others_leave_out_expired_ones_and_the_persons_own(database: Database) -> None:
    waiting = add_request(database, "U0TWO", RequestState.PENDING_APPROVAL)
    add_request(database, "U0TWO", RequestState.PENDING_APPROVAL, expires_at=NOW - timedelta(seconds=1))
    add_request(database, "U0ONE", RequestState.PENDING_APPROVAL)
    add_request(database, "U0TWO", RequestState.APPROVED)

    with database.reading() as session:
        assert [row.id for row in home_store.pending_for_others(session, "U0ONE", NOW, limit=50)] == [waiting]


def test_last_runs_are_the_ended_requests_a_person_asked_for_or_decided_on(database: Database) -> None:
    asked = add_request(database, "U0ONE", RequestState.FAILED, minutes_ago=30)
    decided = add_request(database, "U0TWO", RequestState.SUCCEEDED, minutes_ago=10)
    add_request(database, "U0TWO", RequestState.SUCCEEDED, minutes_ago=1)
    add_request(database, "U0ONE", RequestState.RUNNING)
    with database.transaction() as session:
        request_store.record_vote(
            session, request_id=decided, user_id="U0ONE", user_name="one", decision="approve", params_hash="p" * 64,
            plan_hash="q" * 64, now=NOW,
        )  # fmt: skip

    with database.reading() as session:
        assert [row.id for row in home_store.touched_by(session, "U0ONE", limit=10)] == [decided, asked]
        assert home_store.voted_on(session, "U0ONE", [decided, asked]) == {decided}
        assert home_store.voters(session, decided) == {"U0ONE"}


def test_only_locks_people_took_and_that_have_not_ended_are_listed(database: Database) -> None:
    with database.transaction() as session:
        for service, kind, ends in (("a", "manual", 60), ("b", "run", 60), ("c", "manual", -1)):
            lock_store.try_acquire(
                session, service=service, env="production", kind=kind, holder_id="U0ONE", holder_name="one",
                now=NOW - timedelta(minutes=5), expires_at=NOW + timedelta(minutes=ends),
            )  # fmt: skip

    with database.reading() as session:
        assert [(lock.service, lock.env) for lock in home_store.manual_locks(session, NOW)] == [("a", "production")]
