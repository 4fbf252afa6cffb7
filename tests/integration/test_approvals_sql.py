"""Approvals on SQLite and PostgreSQL: exactly one approval transition and one run, whatever the clicks."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.audit.events import Actor, EventType
from bot.errors import AlreadyDecided, AlreadyVoted, ApprovalExpired, ApprovalRefused, NotAnApprover, SelfApproval, StaleApproval
from bot.messages import ButtonAction, MessageRef
from bot.requests.approvals import approve
from bot.requests.invocation import Click, Invocation
from bot.serve.wiring import OpsbotCore
from bot.store import audit as audit_store
from bot.store.migrate import upgrade
from bot.store.models import AuditEventRow, RequestRow
from bot.store.states import RequestState
from tests import doubles as core
from tests.doubles import FakeClock, RecordingReplier, make_touch_app

REQUESTER = Actor("U0REQ", "requester")


def request_touch(app: OpsbotCore, value: str = "v2", actor: Actor = REQUESTER) -> RequestRow:
    reply = RecordingReplier()
    app.front_door.handle_command(Invocation(actor, "C0OPS", f"touch svc {value} in production"), reply)
    assert not reply.messages, reply.last
    with app.database.reading() as session:
        row = session.scalars(select(RequestRow).order_by(RequestRow.id.desc())).first()
    assert row is not None
    return row


def shown(row: RequestRow) -> str:
    return f"{row.id}:{row.params_hash[:16]}:{row.plan_hash[:16]}"


def clicked(actor: Actor, action: ButtonAction, row: RequestRow) -> Click:
    """A click on the request's own message, as Slack sends it (channel and message ts)."""
    return Click(actor, "C0OPS", action, shown(row), MessageRef.from_dict(row.message_ref))


def events(app: OpsbotCore, event: EventType) -> list[AuditEventRow]:
    with app.database.reading() as session:
        return list(session.scalars(select(AuditEventRow).where(AuditEventRow.event == str(event))))


def state_of(app: OpsbotCore, request_id: int) -> str:
    with app.database.reading() as session:
        row = session.get(RequestRow, request_id)
        assert row is not None
        return row.state


def test_fifty_approvers_clicking_at_once_give_one_approval_and_one_run(app: OpsbotCore, clock: FakeClock) -> None:
    row = request_touch(app)
    barrier = threading.Barrier(50)
    outcomes: list[str] = []

    def click(index: int) -> None:
        barrier.wait()
        try:
            approve(app.database, app.groups, request_id=row.id, actor=Actor(f"U0A{index:02d}", f"a{index}"), shown=shown(row), now=clock())
            outcomes.append("approved")
        except AlreadyDecided:
            outcomes.append("already_decided")

    threads = [threading.Thread(target=click, args=(index,)) for index in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("approved") == 1
    assert outcomes.count("already_decided") == 49
    assert len(events(app, EventType.APPROVED)) == 1
    for _ in range(50):
        app.engine.submit(row.id)  # every clicker's front end would try to start it
    assert app.wait_idle(timeout=30)
    assert core.STATE.runs == 1
    assert state_of(app, row.id) == RequestState.SUCCEEDED
    assert len(events(app, EventType.STARTED)) == 1
    assert audit_store.verify(app.database).broken is None


def test_double_click_by_the_same_approver_runs_once(app: OpsbotCore) -> None:
    row = request_touch(app)
    replies = [RecordingReplier() for _ in range(20)]
    click = clicked(Actor("U0A00", "approver0"), ButtonAction.APPROVE, row)
    threads = [threading.Thread(target=app.front_door.handle_click, args=(click, reply)) for reply in replies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert app.wait_idle(timeout=30)
    assert core.STATE.runs == 1
    refusals = [reply.last for reply in replies if reply.messages]
    assert len(refusals) == 19
    assert all("already" in text for text in refusals), refusals


def test_requester_cannot_approve_own_request(app: OpsbotCore, clock: FakeClock) -> None:
    row = request_touch(app, actor=Actor("U0A01", "approver1"))
    with pytest.raises(SelfApproval, match="you cannot approve it"):
        approve(app.database, app.groups, request_id=row.id, actor=Actor("U0A01", "approver1"), shown=shown(row), now=clock())
    refused = events(app, EventType.APPROVAL_REFUSED)
    assert [event.outcome for event in refused] == ["self_approval"]
    assert state_of(app, row.id) == RequestState.PENDING_APPROVAL


def test_approval_after_expiry_is_refused_and_the_request_expires(app: OpsbotCore, clock: FakeClock) -> None:
    row = request_touch(app)
    clock.advance(timedelta(minutes=10, seconds=1))
    with pytest.raises(ApprovalExpired, match="expired at"):
        approve(app.database, app.groups, request_id=row.id, actor=Actor("U0A00", "a0"), shown=shown(row), now=clock())
    assert state_of(app, row.id) == RequestState.EXPIRED
    assert [event.outcome for event in events(app, EventType.APPROVAL_REFUSED)] == ["expired"]
    assert len(events(app, EventType.EXPIRED)) == 1
    assert core.STATE.runs == 0


def test_approver_outside_the_groups_is_refused(app: OpsbotCore, clock: FakeClock) -> None:
    row = request_touch(app)
    with pytest.raises(NotAnApprover, match="must come from @approvers"):
        approve(app.database, app.groups, request_id=row.id, actor=Actor("U0OUT", "outsider"), shown=shown(row), now=clock())
    assert [event.outcome for event in events(app, EventType.APPROVAL_REFUSED)] == ["not_an_approver"]


def test_approval_of_other_parameters_does_not_count(app: OpsbotCore, clock: FakeClock) -> None:
    row = request_touch(app)
    forged = f"{row.id}:{'0' * 16}:{row.plan_hash[:16]}"
    with pytest.raises(StaleApproval):
        approve(app.database, app.groups, request_id=row.id, actor=Actor("U0A00", "a0"), shown=forged, now=clock())
    assert state_of(app, row.id) == RequestState.PENDING_APPROVAL
    assert [event.outcome for event in events(app, EventType.APPROVAL_REFUSED)] == ["stale"]


def test_each_refusal_is_audited_with_its_own_reason(app: OpsbotCore, clock: FakeClock) -> None:
    def refused_with(kind: type[ApprovalRefused], row: RequestRow, actor: Actor, shown_as: str | None = None) -> None:
        with pytest.raises(kind):
            approve(app.database, app.groups, request_id=row.id, actor=actor, shown=shown_as or shown(row), now=clock())

    own = request_touch(app, actor=Actor("U0A01", "approver1"))
    refused_with(SelfApproval, own, Actor("U0A01", "approver1"))
    refused_with(NotAnApprover, own, Actor("U0OUT", "outsider"))
    refused_with(StaleApproval, own, Actor("U0A00", "a0"), shown_as=f"{own.id}:{'0' * 16}:{own.plan_hash[:16]}")
    approve(app.database, app.groups, request_id=own.id, actor=Actor("U0A00", "a0"), shown=shown(own), now=clock())
    refused_with(AlreadyDecided, own, Actor("U0A02", "a2"))
    late = request_touch(app, "v3")
    clock.advance(timedelta(minutes=11))
    refused_with(ApprovalExpired, late, Actor("U0A00", "a0"))
    outcomes = [event.outcome for event in events(app, EventType.APPROVAL_REFUSED)]
    assert sorted(outcomes) == sorted(["self_approval", "not_an_approver", "stale", "already_decided", "expired"])
    assert [state_of(app, own.id), state_of(app, late.id)] == [RequestState.APPROVED, RequestState.EXPIRED]


def test_target_changed_after_approval_means_nothing_runs(app: OpsbotCore, clock: FakeClock) -> None:
    row = request_touch(app)
    core.STATE.value = "changed-by-someone-else"
    approve(app.database, app.groups, request_id=row.id, actor=Actor("U0A00", "a0"), shown=shown(row), now=clock())
    app.engine.execute(row.id)
    assert state_of(app, row.id) == RequestState.NOT_STARTED
    assert core.STATE.runs == 0
    with app.database.reading() as session:
        stored = session.get(RequestRow, row.id)
    assert stored is not None and stored.result is not None
    assert "the target changed since the plan was approved" in stored.result


def test_reject_means_nothing_runs(app: OpsbotCore) -> None:
    row = request_touch(app)
    reply = RecordingReplier()
    app.front_door.handle_click(clicked(Actor("U0A00", "a0"), ButtonAction.REJECT, row), reply)
    approve_reply = RecordingReplier()
    app.front_door.handle_click(clicked(Actor("U0A01", "a1"), ButtonAction.APPROVE, row), approve_reply)
    assert app.wait_idle(timeout=10)
    assert state_of(app, row.id) == RequestState.REJECTED
    assert core.STATE.runs == 0
    assert "already rejected" in approve_reply.last


def test_two_required_approvals(tmp_path: Path, database_url: str, clock: FakeClock) -> None:
    app, _ = make_touch_app(tmp_path, database_url, clock, approvals=2)
    upgrade(app.database)
    try:
        row = request_touch(app)
        first = approve(app.database, app.groups, request_id=row.id, actor=Actor("U0A00", "a0"), shown=shown(row), now=clock())
        assert (first.approved_now, first.approvals, first.required) == (False, 1, 2)
        assert state_of(app, row.id) == RequestState.PENDING_APPROVAL, "one of two approvals does not approve"
        with pytest.raises(AlreadyVoted):
            approve(app.database, app.groups, request_id=row.id, actor=Actor("U0A00", "a0"), shown=shown(row), now=clock())
        assert [event.outcome for event in events(app, EventType.APPROVAL_REFUSED)] == ["already_voted"]
        second = approve(app.database, app.groups, request_id=row.id, actor=Actor("U0A01", "a1"), shown=shown(row), now=clock())
        assert (second.approved_now, second.approvals, second.required) == (True, 2, 2)
        assert state_of(app, row.id) == RequestState.APPROVED
        assert app.engine.execute(row.id) == RequestState.SUCCEEDED
        assert core.STATE.runs == 1
        assert core.STATE.value == "v2"
    finally:
        app.close()
