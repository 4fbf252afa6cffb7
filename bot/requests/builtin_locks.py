"""Built-ins that hold a target still: ``lock`` and ``unlock`` (policy-checked, audited, announced)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import NoReturn

from bot.audit.events import Actor, AuditEvent, EventType
from bot.audit.factories import actor_event, follow_up
from bot.errors import OpsbotError, TargetLocked
from bot.messages import Message, Replier, escape, mention, plain_text
from bot.requests.desk import Desk
from bot.requests.invocation import Invocation
from bot.requests.views import lock_text
from bot.store import audit as audit_store
from bot.store import locks as lock_store
from bot.timefmt import clock_time
from commands.durations import format_duration
from commands.parser import CommandRequest

DEFAULT_LOCK_SECONDS = 3_600


def lock_target(desk: Desk, parsed: CommandRequest, invocation: Invocation, reply: Replier) -> None:
    service, env = _service_env(parsed)
    desk.gate.authorize(command="lock", service=service, env=env, params=parsed.params, actor=invocation.actor, channel=invocation.channel)
    now = desk.clock()
    seconds = parsed.params.get("duration")
    duration = timedelta(seconds=seconds if isinstance(seconds, int) else DEFAULT_LOCK_SECONDS)
    reason = str(parsed.params.get("reason") or "")
    longest = desk.catalog.config.locks.max_duration
    if duration > longest:
        _refuse_long_lock(desk, invocation, service, env, reason, duration, longest)
    with desk.database.transaction() as session:
        holder = lock_store.try_acquire(
            session, service=service, env=env, kind="manual", holder_id=invocation.actor.user_id,
            holder_name=invocation.actor.name, now=now, expires_at=now + duration, reason=reason,
        )  # fmt: skip
        if holder is not None:
            raise TargetLocked(lock_text(holder, now), markup=True)
        event = _lock_event(EventType.LOCKED, invocation.actor, invocation.channel, service, env, reason, int(duration.total_seconds()))
        audit_store.append_events(session, [event], now)
    desk.board.locks_changed()
    until = clock_time(now + duration, now)
    who = mention(invocation.actor.user_id)
    text = f"🔒 {escape(service)}/{escape(env)} is locked by {who} for {format_duration(duration)} (until {until})"
    text += f": {plain_text(reason)}" if reason else "."
    desk.notifier.post(invocation.channel, Message.plain(text))


def unlock_target(desk: Desk, parsed: CommandRequest, invocation: Invocation, reply: Replier) -> None:
    """Release an explicit lock; releasing someone else's names them and tells the service's channel too.

    A policy rule for ``unlock-others`` (if the config has one for this service/env) decides who may
    release another person's lock, e.g. only the owners or on-call; without one, ``unlock`` suffices.
    """
    service, env = _service_env(parsed)
    actor = invocation.actor
    desk.gate.authorize(command="unlock", service=service, env=env, params=parsed.params, actor=actor, channel=invocation.channel)
    now = desk.clock()
    with desk.database.reading() as session:
        held = lock_store.current(session, service=service, env=env, now=now)
    if held is not None and held.kind == "manual" and held.holder_id != actor.user_id and _has_rule(desk, "unlock-others", service, env):
        desk.gate.authorize(
            command="unlock-others", service=service, env=env, params=parsed.params, actor=actor, channel=invocation.channel
        )
    with desk.database.transaction() as session:
        removed = lock_store.release_manual(session, service=service, env=env)
        if removed is None:
            current = lock_store.current(session, service=service, env=env, now=now)
            if current is not None:
                message = lock_text(current, now) + " Only explicit locks can be unlocked; a run's lock ends with the run."
                raise OpsbotError(message, markup=True)
            raise OpsbotError(f"{service}/{env} is not locked.")
        event = _lock_event(EventType.UNLOCKED, actor, invocation.channel, service, env, removed.reason, 0)
        if removed.holder_id != actor.user_id:
            event = follow_up(event, EventType.UNLOCKED, "released_for_another", holder=removed.holder_id, holder_name=removed.holder_name)
        audit_store.append_events(session, [event], now)
    desk.board.locks_changed()
    text = f"🔓 {escape(service)}/{escape(env)} was unlocked by {mention(actor.user_id)}."
    if removed.holder_id != actor.user_id:
        why = f" ({escape(removed.reason)})" if removed.reason else ""
        text = text[:-1] + f"; the lock was {mention(removed.holder_id)}'s{why}."
    desk.notifier.post(invocation.channel, Message.plain(text))
    home = desk.catalog.config.services[service].channel if service in desk.catalog.config.services else None
    if removed.holder_id != actor.user_id and home and home != invocation.channel:
        desk.notifier.post(home, Message.plain(text))


def _has_rule(desk: Desk, command: str, service: str, env: str) -> bool:
    return any(command in rule.runbooks and rule.matches(command, service, env) for rule in desk.catalog.config.policy.rules)


def _refuse_long_lock(
    desk: Desk, invocation: Invocation, service: str, env: str, reason: str, duration: timedelta, longest: timedelta
) -> NoReturn:
    """A lock past ``locks.max_duration`` is a decision: audited, and said with the limit."""
    event = _lock_event(EventType.LOCK_REFUSED, invocation.actor, invocation.channel, service, env, reason, int(duration.total_seconds()))
    with desk.database.transaction() as session:
        audit_store.append_events(session, [dataclasses.replace(event, outcome="too_long")], desk.clock())
    raise OpsbotError(
        f"A lock lasts at most {format_duration(longest)} (locks.max_duration in the config); you asked for {format_duration(duration)}. "
        "Lock for less, and lock again when it ends."
    )


def _service_env(parsed: CommandRequest) -> tuple[str, str]:
    if parsed.service is None or parsed.env is None:
        raise OpsbotError("Name a service and an environment, like: lock checkout in production.")
    return parsed.service, parsed.env


def _lock_event(event: EventType, actor: Actor, channel: str, service: str, env: str, reason: str, seconds: int) -> AuditEvent:
    command = "unlock" if event == EventType.UNLOCKED else "lock"
    return actor_event(
        event, actor, channel=channel, runbook=command, service=service, env=env, outcome=str(event), reason=reason, seconds=seconds
    )
