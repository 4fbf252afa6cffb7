"""The request store's conditional updates and sweeps, on SQLite and on PostgreSQL.

The double-execution guard is ``transition``'s ``WHERE state IN (...)``: it must hold on
SQLite too, where transactions serialise and a racing test alone would never catch it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from bot.store import requests as request_store
from bot.store.database import Database
from bot.store.states import RequestState
from tests.doubles import FakeClock

NOW = FakeClock()()


def new_request(database: Database, state: RequestState = RequestState.APPROVED, **values: Any) -> int:
    fields: dict[str, Any] = {
        "runbook": "deploy", "service": "checkout", "env": "production", "target_kind": "kubernetes", "params": {"version": "1.2"},
        "params_hash": "p" * 64, "plan_hash": "q" * 64, "state": str(state), "requester_id": "U0REQ", "requester_name": "req",
        "channel": "C0OPS", "created_at": NOW, "updated_at": NOW,
    }  # fmt: skip
    fields.update(values)
    with database.transaction() as session:
        return request_store.create_request(session, **fields).id


def test_a_second_claim_of_the_same_request_changes_nothing(database: Database) -> None:
    request_id = new_request(database)
    with database.transaction() as session:
        assert request_store.transition(
            session, request_id, expected=[RequestState.APPROVED], new=RequestState.RUNNING, now=NOW, runner_id="runner-a"
        )
    with database.transaction() as session:
        assert not request_store.transition(
            session, request_id, expected=[RequestState.APPROVED], new=RequestState.RUNNING, now=NOW, runner_id="runner-b"
        ), "the row has left 'approved': a second runner must lose"
    with database.reading() as session:
        row = request_store.get_request(session, request_id)
    assert row is not None and (row.state, row.runner_id) == (RequestState.RUNNING, "runner-a")


def test_a_transition_names_every_state_it_accepts(database: Database) -> None:
    request_id = new_request(database, RequestState.PENDING_APPROVAL)
    later = NOW + timedelta(minutes=1)
    with database.transaction() as session:
        moved = request_store.transition(
            session, request_id, expected=[RequestState.APPROVED, RequestState.PENDING_APPROVAL], new=RequestState.CANCELLED, now=later
        )
    assert moved
    with database.reading() as session:
        row = request_store.get_request(session, request_id)
    assert row is not None and (row.state, row.updated_at) == (RequestState.CANCELLED, later)
    with database.transaction() as session:
        assert not request_store.transition(session, 999_999, expected=[RequestState.CANCELLED], new=RequestState.EXPIRED, now=later)


def test_leases_are_renewed_only_by_their_owner_while_running(database: Database) -> None:
    request_id = new_request(database, RequestState.RUNNING, runner_id="runner-a", lease_expires_at=NOW + timedelta(seconds=30))
    until = NOW + timedelta(minutes=5)
    with database.transaction() as session:
        assert not request_store.renew_lease(session, request_id, "runner-b", until), "another runner must not extend our lease"
    with database.reading() as session:
        row = request_store.get_request(session, request_id)
    assert row is not None and row.lease_expires_at == NOW + timedelta(seconds=30)
    with database.transaction() as session:
        assert request_store.renew_lease(session, request_id, "runner-a", until)
    with database.reading() as session:
        row = request_store.get_request(session, request_id)
    assert row is not None and row.lease_expires_at == until
    with database.transaction() as session:
        request_store.transition(session, request_id, expected=[RequestState.RUNNING], new=RequestState.SUCCEEDED, now=NOW)
    with database.transaction() as session:
        assert not request_store.renew_lease(session, request_id, "runner-a", until), "a finished run holds no lease"


def test_sweeps_take_exactly_what_is_due(database: Database) -> None:
    due = new_request(database, RequestState.PENDING_APPROVAL, expires_at=NOW)
    not_yet = new_request(database, RequestState.PENDING_APPROVAL, expires_at=NOW + timedelta(microseconds=1))
    new_request(database, RequestState.PENDING_APPROVAL, expires_at=None)
    new_request(database, RequestState.APPROVED, expires_at=NOW - timedelta(minutes=1))
    abandoned = new_request(database, RequestState.RUNNING, lease_expires_at=NOW - timedelta(microseconds=1))
    new_request(database, RequestState.RUNNING, lease_expires_at=NOW)
    new_request(database, RequestState.RUNNING, lease_expires_at=None)
    waiting = new_request(database, RequestState.APPROVED, updated_at=NOW - timedelta(minutes=2))
    new_request(database, RequestState.APPROVED, updated_at=NOW - timedelta(minutes=1))
    with database.reading() as session:
        assert request_store.due_for_expiry(session, NOW) == [due], "the approval window closes at its exact end"
        assert not_yet not in request_store.due_for_expiry(session, NOW)
        assert request_store.abandoned_runs(session, NOW) == [abandoned], "a lease ending now is not yet lost"
        assert request_store.approved_waiting(session, NOW - timedelta(minutes=1)) == [waiting]


def test_votes_count_only_approvals_of_these_parameters_and_this_plan(database: Database) -> None:
    request_id = new_request(database, RequestState.PENDING_APPROVAL)

    def vote(user: str, decision: str = "approve", params_hash: str = "p" * 64, plan_hash: str = "q" * 64) -> bool:
        with database.transaction() as session:
            return request_store.record_vote(
                session, request_id=request_id, user_id=user, user_name=user.lower(), decision=decision,
                params_hash=params_hash, plan_hash=plan_hash, now=NOW,
            )  # fmt: skip

    assert vote("U0A")
    assert not vote("U0A"), "one vote per person"
    assert vote("U0B", decision="reject")
    assert vote("U0C", params_hash="x" * 64)
    assert vote("U0D", plan_hash="x" * 64)
    assert vote("U0E")
    with database.reading() as session:
        valid = request_store.valid_approvals(session, request_id, "p" * 64, "q" * 64)
        every = request_store.votes(session, request_id)
    assert [row.user_id for row in valid] == ["U0A", "U0E"]
    assert [row.user_id for row in every] == ["U0A", "U0B", "U0C", "U0D", "U0E"]


def vacuum(database: Database, table: str) -> None:
    """What PostgreSQL's autovacuum does to a table in time: dead rows' space becomes free for the next inserts.

    SQLite stores a table in rowid order (here the id), freed space or not: nothing to do there.
    """
    if database.is_postgresql:
        with database.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text(f"VACUUM {table}"))


def test_votes_are_listed_in_the_order_they_were_cast_even_where_a_lost_vote_left_space(database: Database) -> None:
    """A vote whose decision never committed (its replica died first) leaves a dead row on PostgreSQL.

    Once vacuumed, a later vote fills its place.

    PostgreSQL returns rows in the order they lie in the table, not in id order, so only the
    query's ``ORDER BY id`` keeps "who approved, in order" (the approved event, the board) true.
    """
    request_id = new_request(database, RequestState.PENDING_APPROVAL)

    def vote(user: str) -> bool:
        with database.transaction() as session:
            return request_store.record_vote(
                session, request_id=request_id, user_id=user, user_name=user.lower(), decision="approve",
                params_hash="p" * 64, plan_hash="q" * 64, now=NOW,
            )  # fmt: skip

    assert vote("U0C")
    with pytest.raises(ConnectionResetError), database.transaction() as session:
        request_store.record_vote(
            session, request_id=request_id, user_id="U0Z", user_name="u0z", decision="approve",
            params_hash="p" * 64, plan_hash="q" * 64, now=NOW,
        )  # fmt: skip
        session.flush()
        raise ConnectionResetError("the replica died before its commit")
    assert not vote("U0C"), "a double click is refused"
    assert vote("U0A")
    vacuum(database, "approvals")
    assert vote("U0B")
    with database.reading() as session:
        assert [row.user_id for row in request_store.votes(session, request_id)] == ["U0C", "U0A", "U0B"]
        assert [row.user_id for row in request_store.valid_approvals(session, request_id, "p" * 64, "q" * 64)] == ["U0C", "U0A", "U0B"]


def test_listing_filters_newest_first_and_counts_by_state(database: Database) -> None:
    first = new_request(database, RequestState.SUCCEEDED)
    second = new_request(database, RequestState.FAILED, service="search")
    third = new_request(database, RequestState.SUCCEEDED, env="staging")
    with database.reading() as session:
        assert [row.id for row in request_store.list_requests(session)] == [third, second, first]
        assert [row.id for row in request_store.list_requests(session, limit=2)] == [third, second]
        assert [row.id for row in request_store.list_requests(session, states=[RequestState.SUCCEEDED])] == [third, first]
        assert [row.id for row in request_store.list_requests(session, service="search")] == [second]
        assert [row.id for row in request_store.list_requests(session, env="staging")] == [third]
        assert request_store.count_by_state(session) == {"succeeded": 2, "failed": 1}


def test_a_cancel_request_is_read_back_and_other_fields_change_without_a_state_check(database: Database) -> None:
    request_id = new_request(database, RequestState.RUNNING)
    later: datetime = NOW + timedelta(minutes=3)
    with database.transaction() as session:
        assert not request_store.cancel_requested(session, request_id)
        request_store.set_fields(session, request_id, later, cancel_requested=True)
    with database.reading() as session:
        assert request_store.cancel_requested(session, request_id)
        assert not request_store.cancel_requested(session, 999_999)
        row = request_store.get_request(session, request_id)
    assert row is not None and (row.state, row.updated_at) == (RequestState.RUNNING, later)


def test_sweeps_ignore_requests_in_other_states(database: Database) -> None:
    new_request(database, RequestState.SUCCEEDED, lease_expires_at=NOW - timedelta(minutes=5), updated_at=NOW - timedelta(hours=1))
    new_request(database, RequestState.PENDING_APPROVAL, updated_at=NOW - timedelta(hours=1))
    with database.reading() as session:
        assert request_store.abandoned_runs(session, NOW) == [], "a finished run is not abandoned"
        assert request_store.approved_waiting(session, NOW) == [], "only approved requests wait for a runner"


def test_a_lease_renewal_extends_only_that_request(database: Database) -> None:
    first = new_request(database, RequestState.RUNNING, runner_id="runner-a", lease_expires_at=NOW)
    second = new_request(database, RequestState.RUNNING, runner_id="runner-a", lease_expires_at=NOW)
    with database.transaction() as session:
        assert request_store.renew_lease(session, first, "runner-a", NOW + timedelta(minutes=1))
    with database.reading() as session:
        other = request_store.get_request(session, second)
    assert other is not None and other.lease_expires_at == NOW


def test_approvals_of_another_request_with_the_same_parameters_do_not_count(database: Database) -> None:
    first = new_request(database, RequestState.PENDING_APPROVAL)
    second = new_request(database, RequestState.PENDING_APPROVAL)  # same params and plan, so the same hashes
    with database.transaction() as session:
        request_store.record_vote(
            session, request_id=first, user_id="U0A", user_name="a", decision="approve", params_hash="p" * 64, plan_hash="q" * 64, now=NOW
        )
    with database.reading() as session:
        assert request_store.valid_approvals(session, second, "p" * 64, "q" * 64) == []
        [vote] = request_store.votes(session, first)
    assert vote.created_at == NOW


def test_listing_shows_twenty_by_default(database: Database) -> None:
    for _ in range(21):
        new_request(database, RequestState.SUCCEEDED)
    with database.reading() as session:
        assert len(request_store.list_requests(session)) == 20
