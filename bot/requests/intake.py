"""A runbook request from the moment it parsed until it waits for approval or starts: policy, lock, plan, record, post.

Order matters and is the same for every source (typed text, an incident button): the gate
first (a denied request never reaches a backend), then the target's lock, then the plan (a
read-only dry run, with what's changing: commits, image, checks), the gate again with what the
plan found when it found checks (``require_checks``), then one transaction that stores the request and its audit events, then
the message. A request whose approval message could not be posted is withdrawn at once:
without buttons nobody could approve it.

Two answers are not requests: a runbook whose steps only read is run at once and answered
privately (``bot.requests.read_only``), and a change whose plan changes nothing is answered
"already runs 1.4.2; nothing to do" — neither spends a request number nor asks for approval.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from bot.audit.binding import params_hash, plan_hash
from bot.audit.events import SYSTEM, Actor, AuditEvent, EventType
from bot.audit.factories import actor_event, follow_up, request_event
from bot.backends import Backends
from bot.backends.source.whats_changing import checks_state
from bot.errors import OpsbotError, TargetLocked, UsageError
from bot.logs import bind_log_fields
from bot.messages import Message, Replier, escape
from bot.requests import read_only
from bot.requests.desk import Desk
from bot.requests.invocation import Invocation
from bot.requests.policy import ApprovalRequirement, ChangeFacts
from bot.requests.views import lock_text
from bot.runs.engine import RunEngine
from bot.runs.steps import effective_identity, is_mutating, make_context, plan_for_approval, prepare_steps, requester_identity
from bot.store import audit as audit_store
from bot.store import locks as lock_store
from bot.store import requests as request_store
from bot.store.models import RequestRow
from bot.store.states import RequestState
from commands.parser import CommandRequest

logger = logging.getLogger(__name__)


class Intake:
    """Turns a parsed runbook command into a stored, posted request (or a clear, audited refusal)."""

    def __init__(self, *, desk: Desk, backends: Backends, engine: RunEngine) -> None:
        self._desk = desk
        self._backends = backends
        self._engine = engine

    def parse_audited(self, invocation: Invocation) -> CommandRequest:
        """Parse ``invocation.text``; a usage error is audited (``command_rejected``) before it is raised."""
        try:
            return self._desk.catalog.parse(invocation.text)
        except UsageError:
            self._desk.audit_writer.append(
                actor_event(
                    EventType.COMMAND_REJECTED, invocation.actor, channel=invocation.channel, outcome="usage", text=invocation.text[:300]
                )
            )
            raise

    def request(self, parsed: CommandRequest, invocation: Invocation, reply: Replier) -> RequestRow | None:
        """The stored request (None: answered at once, read-only or nothing to do); raises ``OpsbotError`` for a refusal."""
        desk = self._desk
        runbook = desk.catalog.runbooks[parsed.command]
        service, env = parsed.service, parsed.env
        if service is None or env is None:
            raise UsageError(f"`{runbook.name}` needs a service and an environment.")
        now = desk.clock()
        target = desk.catalog.target(service, env)
        steps = prepare_steps(desk.catalog, runbook, target, parsed.params)
        received = actor_event(
            EventType.COMMAND_RECEIVED, invocation.actor, channel=invocation.channel, runbook=runbook.name, service=service,
            env=env, params=dict(parsed.params), outcome="received", text=invocation.text[:500],
        )  # fmt: skip
        decision = desk.gate.authorize(
            command=runbook.name, runbook=runbook, service=service, env=env, params=parsed.params,
            actor=invocation.actor, channel=invocation.channel, received=received,
        )  # fmt: skip
        mutating = is_mutating(steps)
        ctx = make_context(
            request_id=0, service=service, env=env, target=target, actor_id=invocation.actor.user_id,
            actor_name=invocation.actor.name, backends=self._backends, progress=lambda _line: None, runbook=runbook.name,
        )  # fmt: skip
        if not mutating:
            # A person's read-only runbook reads as that person (the cluster's RBAC and CloudTrail see them).
            ctx.identity = requester_identity(desk.identities, invocation.actor.user_id, target)
            title = f"{runbook.name} {service} in {env}"
            read_only.answer(runbook, steps, ctx, title=title, received=received, audit_writer=desk.audit_writer, reply=reply)
            return None
        self._refuse_if_locked(received, service, env, now)
        try:
            # The plan is made as the requester: a cluster whose RBAC refuses them says so now, before anyone is asked.
            ctx.identity = requester_identity(desk.identities, invocation.actor.user_id, target)
            plan = [change.as_dict() for change in plan_for_approval(steps, ctx)]
        except OpsbotError as error:
            desk.audit_writer.append(
                received,
                follow_up(received, EventType.COMMAND_REJECTED, "plan_failed", reason=error.user_message, identity=effective_identity(ctx)),
            )
            raise OpsbotError(f"Could not plan `{runbook.name}` for {service}/{env}: {error.user_message}") from error
        if plan and all(change["before"] == change["after"] for change in plan):
            text = nothing_to_do_text(service, env, plan)
            desk.audit_writer.append(received, follow_up(received, EventType.NOTHING_TO_DO, "nothing_to_do", plan=plan))
            reply.private(Message.plain(escape(text)))
            return None
        checks = checks_state(plan)
        if checks is not None:
            # Asked again with what the plan found: require_checks may add an approval (never removes one).
            decision = desk.gate.authorize(
                command=runbook.name, runbook=runbook, service=service, env=env, params=parsed.params,
                actor=invocation.actor, channel=invocation.channel, received=received, facts=ChangeFacts(checks=checks),
            )  # fmt: skip
        needs_approval = decision.approval.count > 0
        runs_as = f"; approving lets it run as the requester ({ctx.identity.kube_user}), approvers are recorded" if ctx.identity else ""
        row = self._create(invocation, parsed, target.kind, plan, decision.approval, needs_approval, decision.rule, now, runs_as)
        bind_log_fields(request_id=row.id, runbook=runbook.name, service=service, env=env)
        logger.info("request #%s created: %s", row.id, row.state, extra={"outcome": str(row.state)})
        ref = desk.board.post(row, now)
        if ref is not None:
            with desk.database.transaction() as session:
                request_store.set_fields(session, row.id, desk.clock(), message_ref=ref.as_dict())
        elif needs_approval:
            self._withdraw_unposted(row, reply)
            return row
        else:
            reply.private(
                Message.plain(
                    f"I could not post in this channel (invite me with `/invite @opsbot`), so I am running #{row.id} "
                    f"without a message here; follow it with `/ops show {row.id}`."
                )
            )
        if not needs_approval:
            self._engine.submit(row.id)
        return row

    def _create(
        self, invocation: Invocation, parsed: CommandRequest, kind: str, plan: list[dict[str, Any]],
        approval: ApprovalRequirement, needs_approval: bool, rule: str | None, now: datetime, runs_as: str = "",
    ) -> RequestRow:  # fmt: skip
        desk = self._desk
        params = dict(parsed.params)
        env = parsed.env or ""
        state = RequestState.PENDING_APPROVAL if needs_approval else RequestState.APPROVED
        with desk.database.transaction() as session:
            row = request_store.create_request(
                session, runbook=parsed.command, service=parsed.service, env=env, target_kind=kind, params=params,
                params_hash=params_hash(params), plan=plan, plan_hash=plan_hash(plan), state=str(state),
                requester_id=invocation.actor.user_id, requester_name=invocation.actor.name, channel=invocation.channel,
                approvals_required=approval.count if needs_approval else 0,
                approver_groups=list(approval.approvers) if needs_approval else [],
                policy_reason=(approval.describe(env) if needs_approval else f"no approval needed ({rule})") + runs_as,
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

    def _refuse_if_locked(self, received: AuditEvent, service: str, env: str, now: datetime) -> None:
        with self._desk.database.reading() as session:
            lock = lock_store.current(session, service=service, env=env, now=now)
        if lock is not None:
            text = lock_text(lock, now)
            self._desk.audit_writer.append(received, follow_up(received, EventType.LOCK_REFUSED, "locked", reason=text))
            raise TargetLocked(text, markup=True)

    def _withdraw_unposted(self, row: RequestRow, reply: Replier) -> None:
        """No message means no buttons: nobody could approve, so cancel now and say why."""
        desk = self._desk
        now = desk.clock()
        reason = "the approval message could not be posted in this channel"
        with desk.database.transaction() as session:
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


def nothing_to_do_text(service: str, env: str, plan: list[dict[str, Any]]) -> str:
    """``checkout/production already runs 1.4.2; nothing to do.`` from a plan where nothing changes."""
    images = [str(change["after"]) for change in plan if str(change["field"]).startswith("image")]
    if images:
        tags = ", ".join(image.rsplit("/", 1)[-1].split(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else image for image in images)
        return f"{service}/{env} already runs {tags}; nothing to do."
    values = ", ".join(f"{change['field']} {change['after']}" for change in plan)
    return f"{service}/{env} already has {values}; nothing to do."
