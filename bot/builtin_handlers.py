"""Handlers for the built-in commands: help, history, approvals, show, cancel, lock, unlock."""

from __future__ import annotations

from datetime import timedelta

from bot.audit.events import AuditEvent, EventType
from bot.errors import OpsbotError, RequestNotFound
from bot.invocation import Invocation
from bot.lifecycle import cancel, votes_of
from bot.messages import Message, escape, mention
from bot.notifier import Replier
from bot.operations import Operations
from bot.policy import Subject, evaluate
from bot.states import RequestState
from bot.steps import target_of
from bot.store import audit as audit_store
from bot.store import locks as lock_store
from bot.store import requests as request_store
from bot.views import history_message, lock_text, request_message, request_title
from commands.help import command_help, overview
from commands.parser import CommandRequest


def install_builtins(operations: Operations) -> None:
    """Register every built-in command handler on ``operations``."""
    handlers = _BuiltinHandlers(operations)
    operations.builtins.update(
        {
            "help": handlers.help,
            "history": handlers.history,
            "approvals": handlers.approvals,
            "show": handlers.show,
            "cancel": handlers.cancel,
            "lock": handlers.lock,
            "unlock": handlers.unlock,
        }
    )


class _BuiltinHandlers:
    def __init__(self, operations: Operations) -> None:
        self.ops = operations

    def help(self, parsed: CommandRequest, invocation: Invocation, reply: Replier) -> None:
        name = parsed.params.get("command")
        specs = self.ops.catalog.commands
        lines = command_help(specs, str(name)) if name else overview(specs)
        reply.private(Message(text=lines[0], title="opsbot help", sections=("\n".join(lines),)))

    def history(self, parsed: CommandRequest, invocation: Invocation, reply: Replier) -> None:
        limit = parsed.params.get("limit")
        with self.ops.database.reading() as session:
            rows = request_store.list_requests(
                session, service=parsed.service, env=parsed.env, limit=limit if isinstance(limit, int) else 10
            )
        where = "/".join(part for part in (parsed.service, parsed.env) if part) or "all services"
        reply.private(history_message(rows, f"History of {where}"))

    def approvals(self, parsed: CommandRequest, invocation: Invocation, reply: Replier) -> None:
        with self.ops.database.reading() as session:
            rows = request_store.list_requests(session, states=[RequestState.PENDING_APPROVAL], limit=50)
        reply.private(history_message(rows, "Waiting for approval"))

    def show(self, parsed: CommandRequest, invocation: Invocation, reply: Replier) -> None:
        request_id = int(str(parsed.params["request"]))
        with self.ops.database.reading() as session:
            row = request_store.get_request(session, request_id)
            events = audit_store.tail(session, limit=30, request_id=request_id)
        if row is None:
            raise RequestNotFound(f"There is no request #{request_id}.")
        message = request_message(
            row, votes=votes_of(self.ops.database, row.id), target=_target(self.ops, row.service, row.env), now=self.ops.clock()
        )
        timeline = "\n".join(
            f"{event.at.strftime('%H:%M:%S')} {escape(event.event)} {escape(event.actor_name)} {escape(event.outcome)}" for event in events
        )
        reply.private(
            Message(
                text=message.text, title=message.title, sections=(*message.sections, f"*Audit:*\n{timeline}"),
                fields=message.fields, context=message.context,
            )
        )  # fmt: skip

    def cancel(self, parsed: CommandRequest, invocation: Invocation, reply: Replier) -> None:
        request_id = int(str(parsed.params["request"]))
        row = cancel(self.ops.database, self.ops.groups, request_id=request_id, actor=invocation.actor, now=self.ops.clock())
        self.ops.refresh(row)
        if row.state == RequestState.RUNNING:
            reply.private(Message.plain(f"Stopping #{request_id}: the current step is being cancelled."))
        else:
            reply.private(Message.plain(f"{request_title(row)} is cancelled."))

    def lock(self, parsed: CommandRequest, invocation: Invocation, reply: Replier) -> None:
        service, env = _service_env(parsed)
        self._check_policy("lock", parsed, invocation, service, env)
        now = self.ops.clock()
        seconds = parsed.params.get("duration")
        duration = timedelta(seconds=seconds if isinstance(seconds, int) else 3_600)
        reason = str(parsed.params.get("reason") or "")
        with self.ops.database.transaction() as session:
            holder = lock_store.try_acquire(
                session, service=service, env=env, kind="manual", holder_id=invocation.actor.user_id,
                holder_name=invocation.actor.name, now=now, expires_at=now + duration, reason=reason,
            )  # fmt: skip
            if holder is not None:
                raise OpsbotError(lock_text(holder, now), markup=True)
            audit_store.append_events(
                session, [_lock_event(EventType.LOCKED, invocation, service, env, reason, int(duration.total_seconds()))], now
            )
        minutes = int(duration.total_seconds() // 60)
        text = f"🔒 {escape(service)}/{escape(env)} is locked by {mention(invocation.actor.user_id)} for {minutes} min"
        text += f": {escape(reason)}" if reason else "."
        self.ops.notifier.post(invocation.channel, Message.plain(text))

    def unlock(self, parsed: CommandRequest, invocation: Invocation, reply: Replier) -> None:
        service, env = _service_env(parsed)
        self._check_policy("unlock", parsed, invocation, service, env)
        now = self.ops.clock()
        with self.ops.database.transaction() as session:
            removed = lock_store.release_manual(session, service=service, env=env)
            if removed is None:
                current = lock_store.current(session, service=service, env=env, now=now)
                if current is not None:
                    message = lock_text(current, now) + " Only explicit locks can be unlocked; a run's lock ends with the run."
                    raise OpsbotError(message, markup=True)
                raise OpsbotError(f"{service}/{env} is not locked.")
            audit_store.append_events(session, [_lock_event(EventType.UNLOCKED, invocation, service, env, removed.reason, 0)], now)
        self.ops.notifier.post(
            invocation.channel, Message.plain(f"🔓 {escape(service)}/{escape(env)} was unlocked by {mention(invocation.actor.user_id)}.")
        )

    def _check_policy(self, command: str, parsed: CommandRequest, invocation: Invocation, service: str, env: str) -> None:
        decision = evaluate(
            self.ops.catalog.config, self.ops.groups, command=command, runbook=None, service=service, env=env,
            params=parsed.params, subject=Subject(invocation.actor.user_id, invocation.channel), now=self.ops.clock(),
        )  # fmt: skip
        if not decision.allowed:
            event = _lock_event(EventType.DENIED, invocation, service, env, decision.reason, 0)
            with self.ops.database.transaction() as session:
                audit_store.append_events(session, [event], self.ops.clock())
            raise OpsbotError(f"Denied: {decision.reason}", markup=True)


def _service_env(parsed: CommandRequest) -> tuple[str, str]:
    if parsed.service is None or parsed.env is None:
        raise OpsbotError("Name a service and an environment, like: lock checkout in production.")
    return parsed.service, parsed.env


def _lock_event(event: EventType, invocation: Invocation, service: str, env: str, reason: str, seconds: int) -> AuditEvent:
    command = "unlock" if event == EventType.UNLOCKED else "lock"
    return AuditEvent(
        event=event, actor_id=invocation.actor.user_id, actor_name=invocation.actor.name, channel=invocation.channel,
        runbook=command, service=service, env=env, outcome=str(event), details={"reason": reason, "seconds": seconds},
    )  # fmt: skip


def _target(ops: Operations, service: str, env: str) -> str:
    try:
        return target_of(ops.catalog, service, env).describe()
    except KeyError:
        return ""
