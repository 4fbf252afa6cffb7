"""Approvals: approve, reject, cancel and expire a request, each a checked, audited transition.

Each function runs in one transaction: read the request, check the rules in a fixed
order (StackStorm's inquiry order: answered/timed out first, then who may answer, then the
answer itself), make one conditional transition, append the audit events, commit. A
refusal is audited too, in its own transaction, then raised for the front end to show.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.audit.events import SYSTEM, Actor, ActorKind, EventType
from bot.audit.factories import actor_event, request_event
from bot.errors import (
    AlreadyDecided,
    AlreadyVoted,
    ApprovalExpired,
    ApprovalRefused,
    NotAnApprover,
    NotRequester,
    PolicyChanged,
    RequestNotFound,
    SelfApproval,
    StaleApproval,
    WrongMessage,
)
from bot.messages import MessageRef
from bot.requests.groups import GroupDirectory
from bot.requests.views import STATE_WORDS, button_value
from bot.store import audit as audit_store
from bot.store import home as home_store
from bot.store import requests as request_store
from bot.store.database import Database
from bot.store.models import ApprovalRow, RequestRow
from bot.store.states import RequestState
from bot.timefmt import clock_time

Clock = Callable[[], datetime]
Recheck = Callable[[RequestRow, Sequence[str]], str | None]
"""The policy asked again for the request and its approvers (``Gate.recheck``): None, or why it may not go on."""


@dataclass(frozen=True)
class ClickedAt:
    """Where a decision came from: the clicked message or App Home view; a typed command (``/ops cancel 12``) has none."""

    channel: str
    message: MessageRef | None
    home_view: str | None = None


@dataclass(frozen=True)
class VoteOutcome:
    """After an approval: whether the request is now approved, and the votes so far."""

    request: RequestRow
    approved_now: bool
    approvals: int
    required: int


def approve(
    database: Database,
    groups: GroupDirectory,
    *,
    request_id: int,
    actor: Actor,
    shown: str,
    now: datetime,
    where: ClickedAt | None = None,
    recheck: Recheck | None = None,
) -> VoteOutcome:
    """Record an approval; the vote that reaches the required count moves the request to approved.

    That last vote asks the policy again (``recheck``): a freeze that began since the request, a
    requester or approver who lost their rights, refuses the click with the reason (audited).
    """
    try:
        with database.transaction() as session:
            row = _pending(session, request_id, actor, now)
            _check_where(session, row, where, actor, shown, now)
            _check_approver(row, groups, actor, shown)
            if not request_store.record_vote(
                session,
                request_id=row.id,
                user_id=actor.user_id,
                user_name=actor.name,
                decision="approve",
                params_hash=row.params_hash,
                plan_hash=row.plan_hash,
                now=now,
            ):
                raise AlreadyVoted(f"You already approved #{row.id}; one person counts once.")
            valid = request_store.valid_approvals(session, row.id, row.params_hash, row.plan_hash)
            events = [request_event(row, EventType.APPROVAL_GIVEN, actor, outcome="counted", approvals=len(valid))]
            approved_now = len(valid) >= row.approvals_required
            if approved_now and recheck is not None:
                reason = recheck(row, [vote.user_id for vote in valid])
                if reason is not None:
                    raise PolicyChanged(f"#{row.id} cannot be approved now: {reason}", markup=True)
            if approved_now:
                if not request_store.transition(
                    session, row.id, expected=[RequestState.PENDING_APPROVAL], new=RequestState.APPROVED, now=now
                ):
                    raise AlreadyDecided(f"#{row.id} was decided by someone else a moment ago.")
                approvers = [vote.user_id for vote in valid]
                events.append(request_event(row, EventType.APPROVED, actor, outcome="approved", approvers=approvers))
            audit_store.append_events(session, events, now)
            fresh = request_store.get_request(session, row.id)
            assert fresh is not None
            return VoteOutcome(fresh, approved_now, len(valid), row.approvals_required)
    except ApprovalRefused as refusal:
        _audit_refusal(database, request_id, actor, refusal, now)
        if isinstance(refusal, ApprovalExpired):
            _expire_one(database, request_id, now)
        raise


def reject(
    database: Database, groups: GroupDirectory, *, request_id: int, actor: Actor, shown: str, now: datetime, where: ClickedAt | None = None
) -> RequestRow:
    """An approver says no: the request ends ``rejected`` and nothing runs."""
    try:
        with database.transaction() as session:
            row = _pending(session, request_id, actor, now)
            _check_where(session, row, where, actor, shown, now)
            if actor.user_id != row.requester_id:
                _check_approver(row, groups, actor, shown)
            request_store.record_vote(
                session,
                request_id=row.id,
                user_id=actor.user_id,
                user_name=actor.name,
                decision="reject",
                params_hash=row.params_hash,
                plan_hash=row.plan_hash,
                now=now,
            )
            if not request_store.transition(
                session, row.id, expected=[RequestState.PENDING_APPROVAL], new=RequestState.REJECTED, now=now,
                finished_at=now, result=f"rejected by {actor.name}",
            ):  # fmt: skip
                raise AlreadyDecided(f"#{row.id} was decided by someone else a moment ago.")
            audit_store.append_events(session, [request_event(row, EventType.REJECTED, actor, outcome="rejected")], now)
            fresh = request_store.get_request(session, row.id)
            assert fresh is not None
            return fresh
    except ApprovalRefused as refusal:
        _audit_refusal(database, request_id, actor, refusal, now)
        raise


def cancel(
    database: Database,
    groups: GroupDirectory,
    *,
    request_id: int,
    actor: Actor,
    now: datetime,
    where: ClickedAt | None = None,
    shown: str | None = None,
) -> RequestRow:
    """The requester withdraws a pending request, or the requester/an approver stops a running one.

    ``shown`` is the clicked button's value (None for a typed ``/ops cancel``); a click on the App
    Home must carry the request's current one.
    """
    try:
        with database.transaction() as session:
            row = request_store.get_request(session, request_id)
            if row is None:
                raise RequestNotFound(f"There is no request #{request_id}.")
            _check_where(session, row, where, actor, shown, now)
            may_stop = actor.user_id == row.requester_id or groups.is_member(actor.user_id, tuple(row.approver_groups))
            state = RequestState(row.state)
            if state == RequestState.PENDING_APPROVAL:
                if actor.user_id != row.requester_id:
                    raise NotRequester(f"Only {row.requester_name} can cancel #{row.id}; approvers can Reject it instead.")
                moved = request_store.transition(
                    session, row.id, expected=[state], new=RequestState.CANCELLED, now=now, finished_at=now,
                    result=f"cancelled by {actor.name}",
                )  # fmt: skip
                event = EventType.CANCELLED
            elif state in (RequestState.APPROVED, RequestState.RUNNING):
                if not may_stop:
                    raise NotRequester(f"Only {row.requester_name} or an approver of #{row.id} can stop it.")
                moved = _request_stop(session, row, state, actor, now)
                event = EventType.CANCEL_REQUESTED if state == RequestState.RUNNING else EventType.CANCELLED
            else:
                raise AlreadyDecided(f"#{row.id} is already {STATE_WORDS[state]}; there is nothing to cancel.")
            if not moved:
                raise AlreadyDecided(f"#{row.id} changed state a moment ago; look at it again.")
            audit_store.append_events(session, [request_event(row, event, actor, outcome=str(event))], now)
            fresh = request_store.get_request(session, row.id)
            assert fresh is not None
            return fresh
    except ApprovalRefused as refusal:
        _audit_refusal(database, request_id, actor, refusal, now)
        raise


def expire_due(database: Database, now: datetime) -> list[RequestRow]:
    """Move every pending request past its deadline to ``expired``; returns those that moved."""
    with database.reading() as session:
        due = request_store.due_for_expiry(session, now)
    expired: list[RequestRow] = []
    for request_id in due:
        row = _expire_one(database, request_id, now)
        if row is not None:
            expired.append(row)
    return expired


def votes_of(database: Database, request_id: int) -> list[ApprovalRow]:
    with database.reading() as session:
        return request_store.votes(session, request_id)


def _expire_one(database: Database, request_id: int, now: datetime) -> RequestRow | None:
    with database.transaction() as session:
        row = request_store.get_request(session, request_id)
        if row is None or not request_store.transition(
            session, request_id, expected=[RequestState.PENDING_APPROVAL], new=RequestState.EXPIRED, now=now,
            finished_at=now, result="expired without enough approvals",
        ):  # fmt: skip
            return None
        audit_store.append_events(session, [request_event(row, EventType.EXPIRED, SYSTEM, outcome="expired")], now)
        return request_store.get_request(session, request_id)


def _request_stop(session: Any, row: RequestRow, state: RequestState, actor: Actor, now: datetime) -> bool:
    if state == RequestState.APPROVED:
        return request_store.transition(
            session, row.id, expected=[state], new=RequestState.CANCELLED, now=now, finished_at=now,
            result=f"cancelled by {actor.name} before it started",
        )  # fmt: skip
    # Who pressed Stop, for the run to name when it ends ``cancelled`` (the result is shown only once it has ended).
    request_store.set_fields(session, row.id, now, cancel_requested=True, result=f"cancelled by {actor.name}")
    return True


def _pending(session: Any, request_id: int, actor: Actor, now: datetime) -> RequestRow:
    """The request, if it is still waiting and not past its deadline (else a typed refusal)."""
    row = request_store.get_request(session, request_id)
    if row is None:
        raise RequestNotFound(f"There is no request #{request_id}.")
    state = RequestState(row.state)
    if state != RequestState.PENDING_APPROVAL:
        raise AlreadyDecided(f"#{row.id} is already {STATE_WORDS[state]}; your click changed nothing.")
    if row.expires_at is not None and now >= row.expires_at:
        raise ApprovalExpired(f"#{row.id} expired at {clock_time(row.expires_at, now)}; ask {row.requester_name} to request it again.")
    return row


def _check_where(session: Any, row: RequestRow, where: ClickedAt | None, actor: Actor, shown: str | None, now: datetime) -> None:
    """A button counts only on the request's own message (that channel, that message), or on the clicker's App Home.

    A copy of the buttons (another app's message, a forwarded payload, another channel) must not
    decide a request whose approvers are watching a different message. Before opsbot has stored the
    message's ts (a click can beat it), the request's channel is what must match.

    The App Home is the other place opsbot draws these buttons, one view per person: a click from it
    counts only from the home view opsbot last published for the person who clicked, and only with
    the value that binds the request's current parameters and plan (a home redrawn a moment ago
    may show an older plan; an edited payload any plan at all). Who may decide is checked after
    this, the same way for both places.

    A click that beat the store of the message's ts says where the message is: it is stored with
    the decision (in its transaction, no extra round trip), so the run can redraw it.
    """
    if where is None:
        return
    if where.home_view is not None:
        _check_home_click(session, row, where.home_view, actor, shown)
        return
    stored = MessageRef.from_dict(row.message_ref)
    if stored is not None and where.message == stored:
        return
    if stored is None and where.channel == row.channel:
        if where.message is not None and where.message.channel == row.channel:
            request_store.set_fields(session, row.id, now, message_ref=where.message.as_dict())
        return
    home = f"<#{row.channel}>" if stored is None else f"its message in <#{stored.channel}>"
    raise WrongMessage(f"That button is not where #{row.id} was asked; decide it from {home}.", markup=True)


def _check_home_click(session: Any, row: RequestRow, view_id: str, actor: Actor, shown: str | None) -> None:
    published = home_store.published_view(session, actor.user_id)
    if published is None or view_id != published:
        where = f"your App Home or its message in <#{row.channel}>"
        raise WrongMessage(f"That button is not on the App Home opsbot drew for you; decide #{row.id} from {where}.", markup=True)
    if shown != button_value(row):
        raise StaleApproval(f"#{row.id} changed since your App Home was drawn; look at it again (it has been refreshed).")


def _check_approver(row: RequestRow, groups: GroupDirectory, actor: Actor, shown: str) -> None:
    if actor.kind != ActorKind.PERSON:
        # Approval is a person's judgement: a program (an API client) never approves, whatever a group lists.
        raise NotAnApprover(f"Approvals for #{row.id} must come from a person in {_groups(row)}.")
    if actor.user_id == row.requester_id:
        raise SelfApproval(f"You asked for #{row.id}, so you cannot approve it: someone else from {_groups(row)} must.")
    if not groups.is_member(actor.user_id, tuple(row.approver_groups)):
        raise NotAnApprover(f"Approvals for #{row.id} must come from {_groups(row)}; you are not a member.")
    if shown != button_value(row):
        raise StaleApproval(f"#{row.id} changed since that message was drawn; approve from its current message.")


def _groups(row: RequestRow) -> str:
    """``@approvers, @oncall``: a request waits for approval only with the groups its rule names (a rule with a count must name some)."""
    return ", ".join(f"@{group}" for group in row.approver_groups)


def _audit_refusal(database: Database, request_id: int, actor: Actor, refusal: ApprovalRefused, now: datetime) -> None:
    with database.transaction() as session:
        row = request_store.get_request(session, request_id)
        if row is not None:
            event = request_event(row, EventType.APPROVAL_REFUSED, actor, outcome=refusal.code, reason=refusal.user_message)
        else:
            event = actor_event(EventType.APPROVAL_REFUSED, actor, outcome=refusal.code, reason=refusal.user_message, request=request_id)
        audit_store.append_events(session, [event], now)
