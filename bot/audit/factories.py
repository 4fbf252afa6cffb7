"""The one place audit events are built, so every event of a kind carries the same fields."""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

from bot.audit.events import Actor, AuditEvent, EventType


class RequestFacts(Protocol):
    """What an event about a request copies from it (``RequestRow`` has these columns)."""

    @property
    def id(self) -> int: ...
    @property
    def channel(self) -> str: ...
    @property
    def runbook(self) -> str: ...
    @property
    def service(self) -> str: ...
    @property
    def env(self) -> str: ...
    @property
    def params(self) -> dict[str, Any]: ...


def request_event(row: RequestFacts, event: EventType, actor: Actor, *, outcome: str = "", **details: Any) -> AuditEvent:
    """An event about ``row``, with its runbook, target and parameters filled in."""
    return AuditEvent(
        event=event,
        actor_id=actor.user_id,
        actor_name=actor.name,
        channel=row.channel,
        request_id=row.id,
        runbook=row.runbook,
        service=row.service,
        env=row.env,
        params=dict(row.params),
        outcome=outcome,
        details=details,
    )


def actor_event(
    event: EventType,
    actor: Actor,
    *,
    channel: str = "",
    outcome: str = "",
    runbook: str = "",
    service: str = "",
    env: str = "",
    params: dict[str, Any] | None = None,
    request_id: int | None = None,
    **details: Any,
) -> AuditEvent:
    """An event that is not (yet) about a stored request: a refusal, a lock, an incident, a digest."""
    return AuditEvent(
        event=event,
        actor_id=actor.user_id,
        actor_name=actor.name,
        channel=channel,
        request_id=request_id,
        runbook=runbook,
        service=service,
        env=env,
        params=dict(params or {}),
        outcome=outcome,
        details=details,
    )


def follow_up(base: AuditEvent, event: EventType, outcome: str, **details: Any) -> AuditEvent:
    """``base`` (typically ``command_received``) as another event, with more details."""
    return dataclasses.replace(base, event=event, outcome=outcome, details={**base.details, **details})
