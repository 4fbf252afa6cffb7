"""Reject, cancel, expiry and where a click came from, on SQLite and PostgreSQL: the state, the words, the audit row.

``test_approvals_sql.py`` races approvals; these are the other decisions a person takes on a
request, each checked for what the person is told and what the audit log keeps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.audit.events import Actor, EventType
from bot.errors import (
    AlreadyDecided,
    AlreadyVoted,
    ApprovalExpired,
    NotAnApprover,
    NotRequester,
    PolicyChanged,
    RequestNotFound,
    SelfApproval,
    StaleApproval,
    WrongMessage,
)
from bot.messages import ButtonAction, MessageRef
from bot.requests.approvals import ClickedAt, approve, cancel, expire_due, reject, votes_of
from bot.requests.front_door import error_message
from bot.requests.groups import GroupDirectory
from bot.requests.invocation import Click, Invocation
from bot.serve.wiring import OpsbotCore
from bot.store import home as home_store
from bot.store import requests as request_store
from bot.store.migrate import upgrade
from bot.store.models import AuditEventRow, RequestRow
from bot.store.states import RequestState
from tests.doubles import FakeClock, RecordingReplier, make_touch_app

REQUESTER = Actor("U0REQ", "requester")
APPROVER = Actor("U0A00", "approver0")
OTHER_APPROVER = Actor("U0A01", "approver1")
OUTSIDER = Actor("U0OUT", "outsider")


def requested(app: OpsbotCore, value: str = "v2") -> RequestRow:
    reply = RecordingReplier()
    app.front_door.handle_command(Invocation(REQUESTER, "C0OPS", f"touch svc {value} in production"), reply)
    assert not reply.messages, reply.last
    with app.database.reading() as session:
        row = session.scalars(select(RequestRow).order_by(RequestRow.id.desc())).first()
    assert row is not None
    return row


def shown(row: RequestRow) -> str:
    return f"{row.id}:{row.params_hash[:16]}:{row.plan_hash[:16]}"


def stored(app: OpsbotCore, request_id: int) -> RequestRow:
    with app.database.reading() as session:
        row = request_store.get_request(session, request_id)
    assert row is not None
    return row


def audit(app: OpsbotCore, event: EventType) -> list[AuditEventRow]:
    with app.database.reading() as session:
        return list(session.scalars(select(AuditEventRow).where(AuditEventRow.event == str(event)).order_by(AuditEventRow.seq)))


def approved(app: OpsbotCore, clock: FakeClock, row: RequestRow) -> None:
    approve(app.database, app.groups, request_id=row.id, actor=APPROVER, shown=shown(row), now=clock())


# -- approve: every refusal in the words the person reads --------------------------------------


def test_approval_refusals_say_exactly_why(app: OpsbotCore, clock: FakeClock) -> None:
    row = requested(app)
    n = row.id

    def refusal(kind: type[Exception], actor: Actor, value: str | None = None) -> str:
        with pytest.raises(kind) as refused:
            approve(app.database, app.groups, request_id=n, actor=actor, shown=value or shown(row), now=clock())
        return str(getattr(refused.value, "user_message", refused.value))

    assert refusal(SelfApproval, REQUESTER) == f"You asked for #{n}, so you cannot approve it: someone else from @approvers must."
    assert refusal(NotAnApprover, OUTSIDER) == f"Approvals for #{n} must come from @approvers; you are not a member."
    assert refusal(StaleApproval, APPROVER, f"{n}:{'0' * 16}:{row.plan_hash[:16]}") == (
        f"#{n} changed since that message was drawn; approve from its current message."
    )
    approved(app, clock, row)
    assert refusal(AlreadyDecided, OTHER_APPROVER) == f"#{n} is already approved, about to start; your click changed nothing."
    with pytest.raises(RequestNotFound, match=r"There is no request #999\."):
        approve(app.database, app.groups, request_id=999, actor=APPROVER, shown="999:x:y", now=clock())
    refusals = audit(app, EventType.APPROVAL_REFUSED)
    assert len(refusals) == 4 and "you are not a member" in refusals[1].details
    assert [(event.request_id, event.actor_id) for event in refusals] == [(n, "U0REQ"), (n, "U0OUT"), (n, "U0A00"), (n, "U0A01")]


def test_approval_records_who_approved_and_when(app: OpsbotCore, clock: FakeClock) -> None:
    row = requested(app)
    clock.advance(timedelta(minutes=3))
    outcome = approve(app.database, app.groups, request_id=row.id, actor=APPROVER, shown=shown(row), now=clock())
    assert (outcome.approved_now, outcome.approvals, outcome.required, outcome.request.state) == (True, 1, 1, RequestState.APPROVED)
    [given] = audit(app, EventType.APPROVAL_GIVEN)
    [decided] = audit(app, EventType.APPROVED)
    assert (given.actor_id, given.outcome, decided.actor_id, decided.outcome) == ("U0A00", "counted", "U0A00", "approved")
    assert '"approvals":1' in given.details
    assert '"approvers":["U0A00"]' in decided.details
    assert [(vote.user_id, vote.decision, vote.created_at) for vote in votes_of(app.database, row.id)] == [("U0A00", "approve", clock())]


def test_one_person_counts_once(tmp_path: Path, database_url: str, clock: FakeClock) -> None:
    app, _ = make_touch_app(tmp_path, database_url, clock, approvals=2)
    upgrade(app.database)
    try:
        row = requested(app)
        approved(app, clock, row)
        with pytest.raises(AlreadyVoted, match=f"You already approved #{row.id}; one person counts once."):
            approved(app, clock, row)
    finally:
        app.close()


def test_the_last_approval_asks_the_policy_again(app: OpsbotCore, clock: FakeClock) -> None:
    row = requested(app)
    asked: list[Sequence[str]] = []

    def freeze_began(request: RequestRow, approvers: Sequence[str]) -> str | None:
        asked.append(list(approvers))
        return "production is frozen now."

    with pytest.raises(PolicyChanged, match=f"#{row.id} cannot be approved now: production is frozen now."):
        approve(app.database, app.groups, request_id=row.id, actor=APPROVER, shown=shown(row), now=clock(), recheck=freeze_began)
    assert asked == [["U0A00"]]
    assert stored(app, row.id).state == RequestState.PENDING_APPROVAL
    assert [event.outcome for event in audit(app, EventType.APPROVAL_REFUSED)] == ["policy_changed"]
    approve(app.database, app.groups, request_id=row.id, actor=OTHER_APPROVER, shown=shown(row), now=clock(), recheck=lambda r, a: None)
    assert stored(app, row.id).state == RequestState.APPROVED


def test_a_program_never_approves_whatever_a_group_lists(app: OpsbotCore, clock: FakeClock) -> None:
    row = requested(app)
    with pytest.raises(NotAnApprover) as refused:
        approve(app.database, app.groups, request_id=row.id, actor=Actor.client("deploy-bot"), shown=shown(row), now=clock())
    assert refused.value.user_message == f"Approvals for #{row.id} must come from a person in @approvers."


def test_a_request_asking_two_groups_names_both_in_a_refusal(app: OpsbotCore, clock: FakeClock) -> None:
    row = requested(app)
    with app.database.transaction() as session:  # as intake stores a rule with `approvers: [approvers, oncall]`
        request_store.set_fields(session, row.id, clock(), approver_groups=["approvers", "oncall"])
    with pytest.raises(NotAnApprover) as refused:
        approve(app.database, app.groups, request_id=row.id, actor=OUTSIDER, shown=shown(row), now=clock())
    assert refused.value.user_message == f"Approvals for #{row.id} must come from @approvers, @oncall; you are not a member."
    with pytest.raises(SelfApproval) as own:
        approve(app.database, app.groups, request_id=row.id, actor=REQUESTER, shown=shown(row), now=clock())
    assert own.value.user_message == f"You asked for #{row.id}, so you cannot approve it: someone else from @approvers, @oncall must."


def test_the_policys_reason_keeps_its_mentions_when_shown(app: OpsbotCore, clock: FakeClock) -> None:
    """The policy's reason is opsbot's own mrkdwn (``<@U…>`` mentions): shown as links, not escaped into ``&lt;@U…&gt;``."""
    row = requested(app)

    def approver_left(request: RequestRow, approvers: Sequence[str]) -> str | None:
        return f"approvals must come from @approvers, and <@{approvers[0]}> no longer may approve (#{request.id} has 0 of 1)."

    with pytest.raises(PolicyChanged) as refused:
        approve(app.database, app.groups, request_id=row.id, actor=APPROVER, shown=shown(row), now=clock(), recheck=approver_left)
    n = row.id
    assert error_message(refused.value).text == (
        f"#{n} cannot be approved now: approvals must come from @approvers, and <@U0A00> no longer may approve (#{n} has 0 of 1)."
    )


# -- expiry --------------------------------------------------------------------------------------


def test_an_approval_at_the_exact_expiry_instant_is_too_late(app: OpsbotCore, clock: FakeClock) -> None:
    row = requested(app)
    assert row.expires_at is not None
    clock.advance(row.expires_at - clock())
    with pytest.raises(ApprovalExpired) as refused:
        approved(app, clock, row)
    assert refused.value.user_message == f"#{row.id} expired at 12:10 UTC; ask requester to request it again."
    assert stored(app, row.id).state == RequestState.EXPIRED


def test_the_sweep_expires_what_is_due_and_only_that(app: OpsbotCore, clock: FakeClock) -> None:
    early = requested(app, "v2")
    clock.advance(timedelta(minutes=1))
    late = requested(app, "v3")
    clock.advance(timedelta(minutes=9))
    expired = expire_due(app.database, clock())
    assert [row.id for row in expired] == [early.id]
    assert (expired[0].state, expired[0].result, expired[0].finished_at) == (
        RequestState.EXPIRED,
        "expired without enough approvals",
        clock(),
    )
    assert stored(app, late.id).state == RequestState.PENDING_APPROVAL
    [event] = audit(app, EventType.EXPIRED)
    assert (event.request_id, event.outcome, event.actor_name) == (early.id, "expired", "opsbot")
    assert expire_due(app.database, clock()) == [], "an expired request expires once"


# -- reject ----------------------------------------------------------------------------------------


def test_an_approver_rejects_and_the_request_says_who(app: OpsbotCore, clock: FakeClock) -> None:
    row = requested(app)
    clock.advance(timedelta(minutes=2))
    rejected = reject(app.database, app.groups, request_id=row.id, actor=APPROVER, shown=shown(row), now=clock())
    assert (rejected.state, rejected.result, rejected.finished_at) == (RequestState.REJECTED, "rejected by approver0", clock())
    [event] = audit(app, EventType.REJECTED)
    assert (event.actor_id, event.outcome) == ("U0A00", "rejected")
    assert [(vote.user_id, vote.decision, vote.created_at) for vote in votes_of(app.database, row.id)] == [("U0A00", "reject", clock())]
    with pytest.raises(AlreadyDecided, match="is already rejected"):
        reject(app.database, app.groups, request_id=row.id, actor=OTHER_APPROVER, shown=shown(row), now=clock())


def test_the_requester_may_reject_their_own_request_but_an_outsider_may_not(app: OpsbotCore, clock: FakeClock) -> None:
    row = requested(app)
    with pytest.raises(NotAnApprover):
        reject(app.database, app.groups, request_id=row.id, actor=OUTSIDER, shown=shown(row), now=clock())
    assert [(event.outcome, event.request_id) for event in audit(app, EventType.APPROVAL_REFUSED)] == [("not_an_approver", row.id)]
    assert stored(app, row.id).state == RequestState.PENDING_APPROVAL
    withdrawn = reject(app.database, app.groups, request_id=row.id, actor=REQUESTER, shown=shown(row), now=clock())
    assert (withdrawn.state, withdrawn.result) == (RequestState.REJECTED, "rejected by requester")


# -- cancel ----------------------------------------------------------------------------------------


def test_only_the_requester_cancels_a_pending_request(app: OpsbotCore, clock: FakeClock) -> None:
    row = requested(app)
    with pytest.raises(NotRequester) as refused:
        cancel(app.database, app.groups, request_id=row.id, actor=APPROVER, now=clock())
    assert refused.value.user_message == f"Only requester can cancel #{row.id}; approvers can Reject it instead."
    assert [(event.outcome, event.request_id) for event in audit(app, EventType.APPROVAL_REFUSED)] == [("not_requester", row.id)]
    cancelled = cancel(app.database, app.groups, request_id=row.id, actor=REQUESTER, now=clock())
    assert (cancelled.state, cancelled.result, cancelled.finished_at) == (RequestState.CANCELLED, "cancelled by requester", clock())
    assert [event.actor_id for event in audit(app, EventType.CANCELLED)] == ["U0REQ"]
    with pytest.raises(AlreadyDecided) as again:
        cancel(app.database, app.groups, request_id=row.id, actor=REQUESTER, now=clock())
    assert again.value.user_message == f"#{row.id} is already cancelled; there is nothing to cancel."


def test_an_approved_request_is_stopped_by_an_approver_before_it_starts(app: OpsbotCore, clock: FakeClock) -> None:
    row = requested(app)
    approved(app, clock, row)
    with pytest.raises(NotRequester) as refused:
        cancel(app.database, app.groups, request_id=row.id, actor=OUTSIDER, now=clock())
    assert refused.value.user_message == f"Only requester or an approver of #{row.id} can stop it."
    stopped = cancel(app.database, app.groups, request_id=row.id, actor=OTHER_APPROVER, now=clock())
    assert (stopped.state, stopped.result) == (RequestState.CANCELLED, "cancelled by approver1 before it started")
    assert stopped.finished_at == clock()
    assert [event.outcome for event in audit(app, EventType.CANCELLED)] == ["cancelled"]


def test_stopping_a_running_request_asks_the_run_to_stop(app: OpsbotCore, clock: FakeClock) -> None:
    row = requested(app)
    approved(app, clock, row)
    with app.database.transaction() as session:
        request_store.transition(session, row.id, expected=[RequestState.APPROVED], new=RequestState.RUNNING, now=clock())
    stopping = cancel(app.database, app.groups, request_id=row.id, actor=REQUESTER, now=clock())
    assert (stopping.state, stopping.cancel_requested, stopping.result) == (RequestState.RUNNING, True, "cancelled by requester")
    assert [event.outcome for event in audit(app, EventType.CANCEL_REQUESTED)] == ["cancel_requested"]
    with pytest.raises(RequestNotFound, match=r"There is no request #999\."):
        cancel(app.database, app.groups, request_id=999, actor=REQUESTER, now=clock())


# -- where the click came from -----------------------------------------------------------------------


def test_a_button_counts_only_on_the_requests_own_message(app: OpsbotCore, clock: FakeClock) -> None:
    row = requested(app)
    home = MessageRef.from_dict(row.message_ref)
    assert home is not None
    elsewhere = ClickedAt("C0OTHER", MessageRef("C0OTHER", "1.000001"))
    with pytest.raises(WrongMessage) as refused:
        approve(app.database, app.groups, request_id=row.id, actor=APPROVER, shown=shown(row), now=clock(), where=elsewhere)
    assert refused.value.user_message == f"That button is not where #{row.id} was asked; decide it from its message in <#{home.channel}>."
    reply = RecordingReplier()
    app.front_door.handle_click(Click(APPROVER, "C0OTHER", ButtonAction.APPROVE, shown(row), elsewhere.message), reply)
    assert reply.last == f"That button is not where #{row.id} was asked; decide it from its message in <#C0OPS>.", (
        "a channel link, not &lt;#…&gt;"
    )
    with pytest.raises(WrongMessage):
        reject(app.database, app.groups, request_id=row.id, actor=APPROVER, shown=shown(row), now=clock(), where=elsewhere)
    with pytest.raises(WrongMessage):
        cancel(app.database, app.groups, request_id=row.id, actor=REQUESTER, now=clock(), where=elsewhere)
    assert [event.outcome for event in audit(app, EventType.APPROVAL_REFUSED)] == ["wrong_message"] * 4
    approve(app.database, app.groups, request_id=row.id, actor=APPROVER, shown=shown(row), now=clock(), where=ClickedAt(home.channel, home))
    assert stored(app, row.id).state == RequestState.APPROVED


def test_before_the_message_is_stored_the_channel_must_match(app: OpsbotCore, clock: FakeClock) -> None:
    row = requested(app)
    with app.database.transaction() as session:
        request_store.set_fields(session, row.id, clock(), message_ref=None)
    with pytest.raises(WrongMessage) as refused:
        approve(
            app.database, app.groups, request_id=row.id, actor=APPROVER, shown=shown(row), now=clock(), where=ClickedAt("C0OTHER", None)
        )
    assert refused.value.user_message == f"That button is not where #{row.id} was asked; decide it from <#C0OPS>."
    approve(app.database, app.groups, request_id=row.id, actor=APPROVER, shown=shown(row), now=clock(), where=ClickedAt("C0OPS", None))
    assert stored(app, row.id).state == RequestState.APPROVED


def test_a_click_that_beats_the_store_of_its_message_says_where_the_message_is(app: OpsbotCore, clock: FakeClock) -> None:
    row = requested(app)
    with app.database.transaction() as session:
        request_store.set_fields(session, row.id, clock(), message_ref=None)
    clicked = MessageRef("C0OPS", "1700000000.000100")

    approve(app.database, app.groups, request_id=row.id, actor=APPROVER, shown=shown(row), now=clock(), where=ClickedAt("C0OPS", clicked))

    assert MessageRef.from_dict(stored(app, row.id).message_ref) == clicked, "the run can redraw the message the click came from"


@pytest.mark.parametrize("decision", ["reject", "cancel"])
def test_a_reject_or_cancel_that_beats_the_store_of_its_message_records_where_and_when(
    app: OpsbotCore, clock: FakeClock, decision: str
) -> None:
    row = requested(app)
    with app.database.transaction() as session:
        request_store.set_fields(session, row.id, clock(), message_ref=None)
    clicked = MessageRef("C0OPS", "1700000000.000200")
    clock.advance(timedelta(seconds=30))

    if decision == "reject":
        reject(
            app.database, app.groups, request_id=row.id, actor=APPROVER, shown=shown(row), now=clock(), where=ClickedAt("C0OPS", clicked)
        )
    else:
        cancel(app.database, app.groups, request_id=row.id, actor=REQUESTER, now=clock(), where=ClickedAt("C0OPS", clicked))

    decided = stored(app, row.id)
    assert MessageRef.from_dict(decided.message_ref) == clicked, "the message can be redrawn with the decision"
    assert decided.updated_at == clock(), "the row says when it was decided"


# -- a click on the App Home -----------------------------------------------------------------------------


def home_click(view: str) -> ClickedAt:
    """Where Slack says an App Home button was: no channel, no message, the view's id."""
    return ClickedAt("", None, home_view=view)


def published(app: OpsbotCore, clock: FakeClock, actor: Actor, view: str) -> None:
    """What the App Home does after ``views.publish`` answers: remember the view it drew for the person."""
    with app.database.transaction() as session:
        home_store.record_published(session, actor.user_id, view, clock())


def test_a_home_click_counts_only_from_the_view_opsbot_published_for_the_clicker(app: OpsbotCore, clock: FakeClock) -> None:
    row = requested(app)
    n = row.id

    def refused_from(view: str, kind: type[Exception] = WrongMessage, value: str | None = None) -> str:
        with pytest.raises(kind) as refused:
            approve(app.database, app.groups, request_id=n, actor=APPROVER, shown=value or shown(row), now=clock(), where=home_click(view))
        assert isinstance(refused.value, WrongMessage | StaleApproval)
        return error_message(refused.value).text

    elsewhere = f"That button is not on the App Home opsbot drew for you; decide #{n} from your App Home or its message in <#C0OPS>."
    assert refused_from("V0HOME") == elsewhere, "nothing was ever published for this person"
    published(app, clock, OTHER_APPROVER, "V0HOME")
    assert refused_from("V0HOME") == elsewhere, "that view was drawn for someone else"
    published(app, clock, APPROVER, "V0MINE")
    assert refused_from("V0HOME") == elsewhere, "an older or another view of the person's home"
    assert refused_from("V0MINE", StaleApproval, f"{n}:{'0' * 16}:{row.plan_hash[:16]}") == (
        f"#{n} changed since your App Home was drawn; look at it again (it has been refreshed)."
    )
    refusals = audit(app, EventType.APPROVAL_REFUSED)
    assert [(event.outcome, event.request_id) for event in refusals] == [("wrong_message", n)] * 3 + [("stale", n)]
    assert stored(app, n).state == RequestState.PENDING_APPROVAL
    outcome = approve(app.database, app.groups, request_id=n, actor=APPROVER, shown=shown(row), now=clock(), where=home_click("V0MINE"))
    assert outcome.approved_now and stored(app, n).state == RequestState.APPROVED


def test_a_home_click_rejects_and_cancels_like_a_click_on_the_message(app: OpsbotCore, clock: FakeClock) -> None:
    published(app, clock, APPROVER, "V0APPROVER")
    published(app, clock, REQUESTER, "V0REQUESTER")
    first = requested(app, "v2")
    rejected = reject(
        app.database, app.groups, request_id=first.id, actor=APPROVER, shown=shown(first), now=clock(), where=home_click("V0APPROVER")
    )
    assert (rejected.state, rejected.result) == (RequestState.REJECTED, "rejected by approver0")

    second = requested(app, "v3")
    with pytest.raises(StaleApproval):
        cancel(app.database, app.groups, request_id=second.id, actor=REQUESTER, now=clock(), where=home_click("V0REQUESTER"), shown="stale")
    with pytest.raises(WrongMessage):
        cancel(
            app.database,
            app.groups,
            request_id=second.id,
            actor=REQUESTER,
            now=clock(),
            where=home_click("V0APPROVER"),
            shown=shown(second),
        )
    cancelled = cancel(
        app.database, app.groups, request_id=second.id, actor=REQUESTER, now=clock(), where=home_click("V0REQUESTER"), shown=shown(second)
    )
    assert (cancelled.state, cancelled.result) == (RequestState.CANCELLED, "cancelled by requester")
    assert [(event.outcome, event.request_id) for event in audit(app, EventType.APPROVAL_REFUSED)] == [
        ("stale", second.id),
        ("wrong_message", second.id),
    ]


# -- a decision that loses the race to another, between its read and its write (PostgreSQL) -----------------
#
# On SQLite every writing transaction starts with BEGIN IMMEDIATE, so decisions on one request run one
# after another and the second always reads the first's outcome ("is already approved"). On PostgreSQL
# (READ COMMITTED) a decision reads the request, then asks who may decide, which can call Slack
# (a Slack user group in an approver group), and another person's decision can commit meanwhile: the
# conditional UPDATE then moves nothing and the person is told so.


def racing_groups(app: OpsbotCore, meanwhile: Callable[[], object]) -> GroupDirectory:
    """The app's groups, with ``approvers`` held in a Slack user group whose first lookup lets ``meanwhile`` commit."""
    ran: list[bool] = []

    def slack_user_group(reference: str) -> frozenset[str]:
        if not ran:
            ran.append(True)
            meanwhile()
        return app.groups.members("approvers")

    config = app.catalog.config
    slack_backed = config.model_copy(update={"groups": {**config.groups, "approvers": ["S0APPROVERS"]}})
    return GroupDirectory(slack_backed, slack_user_group)


def refused_text(decision: Callable[[], object]) -> str:
    with pytest.raises(AlreadyDecided) as refused:
        decision()
    return error_message(refused.value).text


@pytest.fixture
def postgres_app(tmp_path: Path, postgres_url: str, clock: FakeClock) -> Iterator[OpsbotCore]:
    application, _ = make_touch_app(tmp_path, postgres_url, clock)
    upgrade(application.database)
    yield application
    application.close()


def test_an_approval_that_loses_the_race_says_someone_else_decided_on_postgresql(postgres_app: OpsbotCore, clock: FakeClock) -> None:
    app = postgres_app
    row = requested(app)
    groups = racing_groups(app, lambda: approved(app, clock, row))  # approver0 approves while approver1's click asks Slack
    text = refused_text(lambda: approve(app.database, groups, request_id=row.id, actor=OTHER_APPROVER, shown=shown(row), now=clock()))
    assert text == f"#{row.id} was decided by someone else a moment ago."
    assert [(event.outcome, event.request_id) for event in audit(app, EventType.APPROVAL_REFUSED)] == [("already_decided", row.id)]
    assert [event.actor_id for event in audit(app, EventType.APPROVED)] == ["U0A00"]
    assert [vote.user_id for vote in votes_of(app.database, row.id)] == ["U0A00"], "the loser's vote is rolled back"


def test_a_rejection_that_loses_the_race_says_someone_else_decided_on_postgresql(postgres_app: OpsbotCore, clock: FakeClock) -> None:
    app = postgres_app
    row = requested(app)
    groups = racing_groups(app, lambda: approved(app, clock, row))
    text = refused_text(lambda: reject(app.database, groups, request_id=row.id, actor=OTHER_APPROVER, shown=shown(row), now=clock()))
    assert text == f"#{row.id} was decided by someone else a moment ago."
    assert stored(app, row.id).state == RequestState.APPROVED
    assert [(event.outcome, event.request_id) for event in audit(app, EventType.APPROVAL_REFUSED)] == [("already_decided", row.id)]


def test_a_stop_that_loses_the_race_says_the_state_changed_on_postgresql(postgres_app: OpsbotCore, clock: FakeClock) -> None:
    app = postgres_app
    row = requested(app)
    approved(app, clock, row)
    groups = racing_groups(app, lambda: cancel(app.database, app.groups, request_id=row.id, actor=REQUESTER, now=clock()))
    text = refused_text(lambda: cancel(app.database, groups, request_id=row.id, actor=OTHER_APPROVER, now=clock()))
    assert text == f"#{row.id} changed state a moment ago; look at it again."
    assert (stored(app, row.id).state, stored(app, row.id).result) == (RequestState.CANCELLED, "cancelled by requester before it started")
    assert [(event.outcome, event.request_id) for event in audit(app, EventType.APPROVAL_REFUSED)] == [("already_decided", row.id)]
