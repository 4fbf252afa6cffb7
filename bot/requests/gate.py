"""The one gate every action passes: runbooks, built-ins, incident buttons alike.

``authorize`` evaluates the policy (a pure function) and, on a denial, audits the command and
the denial together, then raises ``PolicyDenied`` for the front end to show. Nothing acts
without passing here first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from bot.audit.events import Actor, AuditEvent, EventType
from bot.audit.factories import actor_event, follow_up
from bot.catalog.config import OpsbotConfig
from bot.catalog.runbooks import Runbook
from bot.errors import PolicyDenied
from bot.requests.groups import GroupDirectory
from bot.requests.policy import Decision, Subject, evaluate
from bot.store.audit_writer import AuditWriter
from commands.values import ParamValue


class Gate:
    """Policy checks with their audit trail; shared by everything that acts on a target."""

    def __init__(self, *, config: OpsbotConfig, groups: GroupDirectory, audit_writer: AuditWriter, clock: Callable[[], datetime]) -> None:
        self._config = config
        self._groups = groups
        self._audit_writer = audit_writer
        self._clock = clock

    def authorize(
        self,
        *,
        command: str,
        service: str,
        env: str,
        params: Mapping[str, ParamValue],
        actor: Actor,
        channel: str,
        runbook: Runbook | None = None,
        received: AuditEvent | None = None,
    ) -> Decision:
        """The policy's decision for ``actor`` doing ``command`` on service/env; raises ``PolicyDenied`` (audited) if not allowed.

        ``received`` (the ``command_received`` event of a runbook request) is written with the
        denial, so the audit log shows what was asked and why it was refused, in one batch.
        """
        decision = evaluate(
            self._config, self._groups, command=command, runbook=runbook, service=service, env=env,
            params=dict(params), subject=Subject(actor.user_id, channel), now=self._clock(),
        )  # fmt: skip
        if decision.allowed:
            return decision
        if received is not None:
            events = [received, follow_up(received, EventType.DENIED, "denied", reason=decision.reason, rule=decision.rule or "")]
        else:
            denied = actor_event(
                EventType.DENIED, actor, channel=channel, runbook=command, service=service, env=env, params=dict(params),
                outcome="denied", reason=decision.reason, rule=decision.rule or "",
            )  # fmt: skip
            events = [denied]
        self._audit_writer.append(*events)
        raise PolicyDenied(f"Denied: {decision.reason}", markup=True)
