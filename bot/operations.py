"""The core's front door: one code path for Slack and the shell.

``parse`` is pure and fast (it runs before Slack's 3-second ack); ``handle_command`` and
``handle_click`` run in the worker pool, may call backends and Slack, and never raise:
every error becomes a private reply a person can act on, and every decision is audited.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from bot.audit.events import AuditEvent, EventType
from bot.backends import Backends
from bot.catalog import Catalog
from bot.errors import ApprovalExpired, ApprovalRefused, OpsbotError, RequestNotFound, UsageError
from bot.groups import GroupDirectory
from bot.invocation import Click, Invocation
from bot.lifecycle import Actor, approve, cancel, params_hash, plan_hash, reject, request_event, votes_of
from bot.logs import bind_log_fields, log_context
from bot.messages import ButtonAction, Message, MessageRef, escape
from bot.metrics import record_approval
from bot.notifier import Notifier, Replier
from bot.policy import Subject, evaluate
from bot.runner import Runner
from bot.states import RequestState
from bot.steps import build_plan, is_mutating, make_context, prepare_steps, target_of
from bot.store import audit as audit_store
from bot.store import locks as lock_store
from bot.store import replays as replay_store
from bot.store import requests as request_store
from bot.store.database import Database
from bot.store.models import RequestRow
from bot.views import lock_text, request_message
from commands.parser import CommandRequest, parse_command

logger = logging.getLogger(__name__)

SYSTEM = Actor(user_id="", name="opsbot")
READ_ONLY_BUILTINS = frozenset({"help", "history", "approvals", "show"})
"""Built-ins that only read and answer the asker privately; replaying one harms nothing."""
BuiltinHandler = Callable[[CommandRequest, Invocation, Replier], None]


class Operations:
    """Turns invocations and clicks into policy decisions, requests, runs and messages."""

    def __init__(
        self,
        *,
        catalog: Catalog,
        database: Database,
        groups: GroupDirectory,
        backends: Backends,
        runner: Runner,
        notifier: Notifier,
        clock: Callable[[], datetime],
    ) -> None:
        self.catalog = catalog
        self.database = database
        self.groups = groups
        self.backends = backends
        self.runner = runner
        self.notifier = notifier
        self.clock = clock
        self.builtins: dict[str, BuiltinHandler] = {}

    # -- entry points -------------------------------------------------------------------

    def parse(self, text: str) -> CommandRequest:
        """Pure parse for the ack path; raises ``UsageError`` only."""
        return parse_command(text, self.catalog.commands, self.catalog.config)

    def handle_command(self, invocation: Invocation, reply: Replier, parsed: CommandRequest | None = None) -> None:
        """Run a typed command to its end; never raises. A replayed delivery is dropped."""
        with log_context(user=invocation.actor.user_id, channel=invocation.channel, command=parsed.command if parsed else None):
            # Inside the guard: recording the delivery is a database write, and a database that is
            # down must cost the person a clear reply, not an exception nobody sees in a pool thread.
            self._guarded(reply, self._command_once, invocation, reply, parsed)

    def record_rejected(self, invocation: Invocation, error: UsageError) -> None:
        """Audit a command that failed to parse on the ack path (the reply already went out)."""
        self._guarded(
            _NoReply(),
            self._audit,
            _plain_event(EventType.COMMAND_REJECTED, invocation, outcome="usage", text=invocation.text[:300], error=error.user_message),
        )

    def record_shed(self, invocation: Invocation, parsed: CommandRequest) -> None:
        """Audit a command refused because too much work was queued (its person was told "busy")."""
        event = _plain_event(EventType.COMMAND_REJECTED, invocation, outcome="busy", text=invocation.text[:300], command=parsed.command)
        self._guarded(_NoReply(), self._audit, event)

    def handle_click(self, click: Click, reply: Replier) -> None:
        """Act on a button press; never raises. A replayed delivery is dropped."""
        with log_context(
            user=click.actor.user_id, channel=click.channel, action=str(click.action), request_id=_request_id_or_none(click.value)
        ):
            self._guarded(reply, self._click_once, click, reply)

    def _command_once(self, invocation: Invocation, reply: Replier, parsed: CommandRequest | None) -> None:
        # A replayed `help` or `history` changes nothing and shows the sender nothing new: only
        # commands that can change state pay for the cross-replica dedupe (a database write).
        delivery = None if parsed is not None and parsed.command in READ_ONLY_BUILTINS else invocation.delivery
        if not self._is_replay(delivery, invocation.actor.user_id, invocation.channel):
            self._command(invocation, reply, parsed)

    def _click_once(self, click: Click, reply: Replier) -> None:
        if not self._is_replay(click.delivery, click.actor.user_id, click.channel):
            self._click(click, reply)

    def _is_replay(self, delivery: str | None, user_id: str, channel: str) -> bool:
        """Record the delivery; True (and audited) if any replica already acted on it."""
        if delivery is None:
            return False
        with self.database.transaction() as session:
            if replay_store.first_time_seen(session, delivery, self.clock()):
                return False
            event = AuditEvent(
                event=EventType.REPLAY_REJECTED, actor_id=user_id, channel=channel, outcome="replay", details={"delivery": delivery}
            )
            audit_store.append_events(session, [event], self.clock())
        logger.warning("dropped a replayed Slack request (delivery %s)", delivery)
        return True

    # -- commands -----------------------------------------------------------------------

    def _command(self, invocation: Invocation, reply: Replier, parsed: CommandRequest | None) -> None:
        if parsed is None:
            try:
                parsed = self.parse(invocation.text)
            except UsageError:
                self._audit(_plain_event(EventType.COMMAND_REJECTED, invocation, outcome="usage", text=invocation.text[:300]))
                raise
        if parsed.builtin:
            handler = self.builtins.get(parsed.command)
            if handler is None:
                raise UsageError(f"`{parsed.command}` is not available in this deployment.")
            handler(parsed, invocation, reply)
            return
        self._request_runbook(parsed, invocation, reply)

    def _request_runbook(self, parsed: CommandRequest, invocation: Invocation, reply: Replier) -> None:
        runbook = self.catalog.runbooks[parsed.command]
        service, env = parsed.service, parsed.env
        if service is None or env is None:
            raise UsageError(f"`{runbook.name}` needs a service and an environment.")
        now = self.clock()
        target = target_of(self.catalog, service, env)
        steps = prepare_steps(self.catalog, runbook, target, parsed.params)
        base_event = AuditEvent(
            event=EventType.COMMAND_RECEIVED, actor_id=invocation.actor.user_id, actor_name=invocation.actor.name,
            channel=invocation.channel, runbook=runbook.name, service=service, env=env, params=dict(parsed.params),
            outcome="received", details={"text": invocation.text[:500]},
        )  # fmt: skip
        decision = evaluate(
            self.catalog.config, self.groups, command=runbook.name, runbook=runbook, service=service, env=env,
            params=parsed.params, subject=Subject(invocation.actor.user_id, invocation.channel), now=now,
        )  # fmt: skip
        if not decision.allowed:
            self._audit(base_event, _with(base_event, EventType.DENIED, "denied", reason=decision.reason, rule=decision.rule or ""))
            raise OpsbotError(f"Denied: {decision.reason}", markup=True)
        mutating = is_mutating(steps)
        if mutating:
            self._refuse_if_locked(base_event, service, env, now)
        ctx = make_context(
            request_id=0, service=service, env=env, target=target, actor_id=invocation.actor.user_id,
            actor_name=invocation.actor.name, backends=self.backends, progress=lambda _line: None,
        )  # fmt: skip
        try:
            plan = [change.as_dict() for change in build_plan(steps, ctx)]
        except OpsbotError as error:
            self._audit(base_event, _with(base_event, EventType.COMMAND_REJECTED, "plan_failed", reason=error.user_message))
            raise OpsbotError(f"Could not plan `{runbook.name}` for {service}/{env}: {error.user_message}") from error
        approval = decision.approval
        needs_approval = mutating and approval.count > 0
        row = self._create_request(invocation, parsed, runbook.name, target.kind, plan, approval, needs_approval, decision.rule, now, env)
        bind_log_fields(request_id=row.id, runbook=runbook.name, service=service, env=env)
        logger.info("request #%s created: %s", row.id, row.state, extra={"outcome": str(row.state)})
        ref = self.notifier.post(invocation.channel, request_message(row, target=target.describe(), now=now))
        if ref is not None:
            with self.database.transaction() as session:
                request_store.set_fields(session, row.id, self.clock(), message_ref=ref.as_dict())
        elif needs_approval:
            self._withdraw_unposted(row, invocation, reply)
            return
        else:
            reply.private(
                Message.plain(
                    f"I could not post in this channel (invite me with `/invite @opsbot`), so I am running #{row.id} "
                    f"without a message here; follow it with `/ops show {row.id}`."
                )
            )
        if not needs_approval:
            self.runner.submit(row.id)

    def _withdraw_unposted(self, row: RequestRow, invocation: Invocation, reply: Replier) -> None:
        """No message means no buttons: nobody could approve, so cancel now and say why."""
        now = self.clock()
        reason = "the approval message could not be posted in this channel"
        with self.database.transaction() as session:
            if request_store.transition(
                session, row.id, expected=[RequestState.PENDING_APPROVAL], new=RequestState.CANCELLED, now=now,
                finished_at=now, result=reason,
            ):  # fmt: skip
                audit_store.append_events(
                    session, [request_event(row, EventType.CANCELLED, SYSTEM, outcome="not_posted", reason=reason)], now
                )
        reply.private(
            Message.plain(
                f"I could not post the approval message for #{row.id} in this channel, so nobody could approve it; "
                "it is cancelled and nothing ran. Invite me with `/invite @opsbot` (or use a channel I am in) and ask again."
            )
        )

    def _create_request(
        self, invocation: Invocation, parsed: CommandRequest, runbook: str, kind: str, plan: list[dict[str, Any]],
        approval: Any, needs_approval: bool, rule: str | None, now: datetime, env: str,
    ) -> RequestRow:  # fmt: skip
        params = dict(parsed.params)
        state = RequestState.PENDING_APPROVAL if needs_approval else RequestState.APPROVED
        with self.database.transaction() as session:
            row = request_store.create_request(
                session, runbook=runbook, service=parsed.service, env=env, target_kind=kind, params=params,
                params_hash=params_hash(params), plan=plan, plan_hash=plan_hash(plan), state=str(state),
                requester_id=invocation.actor.user_id, requester_name=invocation.actor.name, channel=invocation.channel,
                approvals_required=approval.count if needs_approval else 0,
                approver_groups=list(approval.approvers) if needs_approval else [],
                policy_reason=approval.describe(env) if needs_approval else f"no approval needed ({rule})",
                expires_at=now + approval.expires_in if needs_approval else None, created_at=now, updated_at=now,
            )  # fmt: skip
            actor = Actor(invocation.actor.user_id, invocation.actor.name)
            events = [
                request_event(row, EventType.COMMAND_RECEIVED, actor, outcome="received", text=invocation.text[:500], rule=rule or ""),
                request_event(
                    row,
                    EventType.APPROVAL_REQUESTED if needs_approval else EventType.APPROVED,
                    actor,
                    outcome="pending" if needs_approval else "no_approval_needed",
                    policy=row.policy_reason,
                    plan=plan,
                ),
            ]
            audit_store.append_events(session, events, now)
            return row

    def _refuse_if_locked(self, base_event: AuditEvent, service: str, env: str, now: datetime) -> None:
        with self.database.reading() as session:
            lock = lock_store.current(session, service=service, env=env, now=now)
        if lock is not None:
            text = lock_text(lock, now)
            self._audit(base_event, _with(base_event, EventType.LOCK_REFUSED, "locked", reason=text))
            raise OpsbotError(text, markup=True)

    # -- clicks -------------------------------------------------------------------------

    def _click(self, click: Click, reply: Replier) -> None:
        if click.action in (ButtonAction.INCIDENT_ROLLBACK, ButtonAction.INCIDENT_ACK):
            handler = self.builtins.get(str(click.action))
            if handler is None:
                raise UsageError("Incident buttons are not available in this deployment.")
            handler(CommandRequest(command=str(click.action), params={"value": click.value}, builtin=True), _click_invocation(click), reply)
            return
        request_id = _request_id(click.value)
        now = self.clock()
        self._remember_message(request_id, click.message)
        try:
            if click.action == ButtonAction.APPROVE:
                try:
                    outcome = approve(self.database, self.groups, request_id=request_id, actor=click.actor, shown=click.value, now=now)
                except ApprovalRefused as refusal:
                    record_approval("approve", refusal.code)
                    raise
                record_approval("approve", "approved" if outcome.approved_now else "counted")
                self.refresh(outcome.request)
                if outcome.approved_now:
                    logger.info("request #%s approved", request_id, extra={"outcome": "approved", "runbook": outcome.request.runbook})
                    self.runner.submit(outcome.request.id)
                else:
                    reply.private(Message.plain(f"Approved. #{request_id} has {outcome.approvals} of {outcome.required} approvals."))
            elif click.action == ButtonAction.REJECT:
                try:
                    rejected = reject(self.database, self.groups, request_id=request_id, actor=click.actor, shown=click.value, now=now)
                except ApprovalRefused as refusal:
                    record_approval("reject", refusal.code)
                    raise
                record_approval("reject", "rejected")
                logger.info("request #%s rejected", request_id, extra={"outcome": "rejected", "runbook": rejected.runbook})
                self.refresh(rejected)
            elif click.action == ButtonAction.CANCEL:
                row = cancel(self.database, self.groups, request_id=request_id, actor=click.actor, now=now)
                self.refresh(row)
                if row.state == RequestState.RUNNING:
                    reply.private(Message.plain(f"Stopping #{request_id}: the current step is being cancelled."))
        except ApprovalExpired:
            self.refresh_by_id(request_id)
            raise

    def _remember_message(self, request_id: int, ref: MessageRef | None) -> None:
        """A click can beat the store of its message's ts; the click itself says where the message is."""
        if ref is None:
            return
        with self.database.transaction() as session:
            row = request_store.get_request(session, request_id)
            if row is not None and row.message_ref is None:
                request_store.set_fields(session, request_id, self.clock(), message_ref=ref.as_dict())

    def refresh(self, row: RequestRow) -> None:
        """Redraw a request's message from the database."""
        ref = MessageRef.from_dict(row.message_ref)
        if ref is None:
            return
        try:
            target = target_of(self.catalog, row.service, row.env).describe()
        except KeyError:
            target = ""
        self.notifier.update(ref, request_message(row, votes=votes_of(self.database, row.id), target=target, now=self.clock()))

    def refresh_by_id(self, request_id: int) -> None:
        with self.database.reading() as session:
            row = request_store.get_request(session, request_id)
        if row is not None:
            self.refresh(row)

    # -- helpers ------------------------------------------------------------------------

    def _audit(self, *events: AuditEvent) -> None:
        """Events that change no state of their own (refusals, denials): group-committed."""
        self.runner.audit_writer.append(*events)

    def _guarded(self, reply: Replier, function: Callable[..., None], *args: Any) -> None:
        try:
            function(*args)
        except OpsbotError as error:
            reply.private(_error_message(error))
        except Exception:
            error_id = uuid.uuid4().hex[:8]
            logger.exception("unhandled error (error id %s)", error_id)
            reply.private(
                Message.plain(
                    f"Something went wrong on our side (error id {error_id}). Nothing further was changed; "
                    "tell the platform team this id, they can find it in the logs."
                )
            )


class _NoReply:
    """For work whose person has already been answered (ack-path usage errors)."""

    def private(self, message: Message) -> None:
        logger.warning("dropped a reply after the ack: %s", message.text)


def _error_message(error: OpsbotError) -> Message:
    text = error.user_message if error.markup else escape(error.user_message)
    if isinstance(error, UsageError) and error.usage:
        text += f"\nUsage: `/ops {escape(error.usage)}`"
    return Message.plain(text)


def _request_id(value: str) -> int:
    request_id = _request_id_or_none(value)
    if request_id is None:
        raise RequestNotFound("That button does not belong to a request opsbot knows; it may come from another app.")
    return request_id


def _request_id_or_none(value: str) -> int | None:
    """The request id a button's value starts with (``<id>:<params>:<plan>``), if it has one."""
    head = value.split(":", 1)[0]
    return int(head) if head.isdigit() and len(head) <= 10 else None


def _plain_event(event: EventType, invocation: Invocation, *, outcome: str, **details: Any) -> AuditEvent:
    return AuditEvent(
        event=event, actor_id=invocation.actor.user_id, actor_name=invocation.actor.name, channel=invocation.channel,
        outcome=outcome, details=details,
    )  # fmt: skip


def _with(base: AuditEvent, event: EventType, outcome: str, **details: Any) -> AuditEvent:
    return AuditEvent(
        event=event, actor_id=base.actor_id, actor_name=base.actor_name, channel=base.channel, runbook=base.runbook,
        service=base.service, env=base.env, params=base.params, outcome=outcome, details={**base.details, **details},
    )  # fmt: skip


def _click_invocation(click: Click) -> Invocation:
    return Invocation(actor=click.actor, channel=click.channel, text="")
