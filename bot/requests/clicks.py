"""Buttons: Approve, Reject and Cancel/Stop on a request's message, Roll back and Acknowledge on an incident's.

Each action is one entry of ``CLICK_ACTIONS``; a request button carries ``<id>:<params>:<plan>``
(``views.button_value``), so a click approves exactly what its message showed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from bot.errors import ApprovalExpired, ApprovalRefused, RequestNotFound
from bot.messages import ButtonAction, Message, Replier, escape
from bot.metrics import record_approval
from bot.requests import builtin_watch
from bot.requests.approvals import ClickedAt, approve, cancel, reject
from bot.requests.desk import Desk
from bot.requests.intake import Intake
from bot.requests.invocation import Click
from bot.runs.engine import RunEngine
from bot.store.models import RequestRow
from bot.store.states import RequestState

logger = logging.getLogger(__name__)


class Clicks:
    """Acts on a button press; raises ``OpsbotError`` subclasses for the front door to answer."""

    def __init__(self, *, desk: Desk, intake: Intake, engine: RunEngine) -> None:
        self._desk = desk
        self._intake = intake
        self._engine = engine
        self._actions: dict[ButtonAction, Callable[[Click, Replier], None]] = {
            ButtonAction.APPROVE: self._approve,
            ButtonAction.REJECT: self._reject,
            ButtonAction.CANCEL: self._cancel,
            ButtonAction.INCIDENT_ROLLBACK: lambda click, reply: builtin_watch.roll_back_incident(desk, intake, click, reply),
            ButtonAction.INCIDENT_ACK: lambda click, reply: builtin_watch.acknowledge_incident(desk, intake, click, reply),
        }

    def handle(self, click: Click, reply: Replier) -> None:
        self._actions[click.action](click, reply)

    def _approve(self, click: Click, reply: Replier) -> None:
        request_id = self._request_of(click)
        try:
            outcome = approve(
                self._desk.database, self._desk.groups, request_id=request_id, actor=click.actor, shown=click.value,
                now=self._desk.clock(), where=_where(click), recheck=self._recheck,
            )  # fmt: skip
        except ApprovalRefused as refusal:
            record_approval("approve", refusal.code)
            self._redraw_if_expired(refusal, request_id)
            raise
        record_approval("approve", "approved" if outcome.approved_now else "counted")
        if not outcome.approved_now:
            self._desk.board.redraw(outcome.request)
            reply.private(Message.plain(f"Approved. #{request_id} has {outcome.approvals} of {outcome.required} approvals."))
            return
        logger.info("request #%s approved", request_id, extra={"outcome": "approved", "runbook": outcome.request.runbook})
        # Claimed here, not in the run pool: a target locked meanwhile is said at the click, not after "about to start".
        refused = self._engine.start(outcome.request.id, policy_just_asked=True)
        if refused is not None:
            reply.private(Message.plain(f"Approved, but #{request_id} did not start: {escape(refused.result or '')}"))

    def _recheck(self, row: RequestRow, approvers: Sequence[str]) -> str | None:
        return self._desk.gate.recheck(row, self._desk.catalog.runbook(row.runbook), approvers)

    def _reject(self, click: Click, reply: Replier) -> None:
        request_id = self._request_of(click)
        try:
            rejected = reject(
                self._desk.database, self._desk.groups, request_id=request_id, actor=click.actor, shown=click.value,
                now=self._desk.clock(), where=_where(click),
            )  # fmt: skip
        except ApprovalRefused as refusal:
            record_approval("reject", refusal.code)
            self._redraw_if_expired(refusal, request_id)
            raise
        record_approval("reject", "rejected")
        logger.info("request #%s rejected", request_id, extra={"outcome": "rejected", "runbook": rejected.runbook})
        self._desk.board.redraw(rejected)

    def _cancel(self, click: Click, reply: Replier) -> None:
        request_id = self._request_of(click)
        try:
            row = cancel(
                self._desk.database, self._desk.groups, request_id=request_id, actor=click.actor,
                now=self._desk.clock(), where=_where(click), shown=click.value,
            )  # fmt: skip
        except ApprovalRefused as refusal:
            self._redraw_if_expired(refusal, request_id)
            raise
        self._desk.board.redraw(row)
        if row.state == RequestState.RUNNING:
            reply.private(Message.plain(f"Stopping #{request_id}: the current step is being cancelled."))

    def _request_of(self, click: Click) -> int:
        request_id = request_id_of(click.value)
        if request_id is None:
            raise RequestNotFound("That button does not belong to a request opsbot knows; it may come from another app.")
        return request_id

    def _redraw_if_expired(self, refusal: ApprovalRefused, request_id: int) -> None:
        if isinstance(refusal, ApprovalExpired):
            self._desk.board.redraw_by_id(request_id)


def _where(click: Click) -> ClickedAt:
    return ClickedAt(channel=click.channel, message=click.message, home_view=click.home_view)


def request_id_of(value: str) -> int | None:
    """The request id a button's value starts with (``<id>:<params>:<plan>``), if it has one."""
    head = value.split(":", 1)[0]
    return int(head) if head.isdigit() and len(head) <= 10 else None
