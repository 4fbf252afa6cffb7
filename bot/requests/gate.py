"""The one gate every action passes: runbooks, built-ins, incident buttons alike.

``authorize`` evaluates the policy (a pure function) and, on a denial, audits the command and
the denial together, then raises ``PolicyDenied`` for the front end to show. Nothing acts
without passing here first.

``recheck`` asks the policy again for a stored request, when it moves to approved and when a
run claims it: a freeze that began, a requester or approver who lost their rights, or a policy
edit since the request was made refuses it then, with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import NoReturn

from bot.audit.events import Actor, AuditEvent, EventType
from bot.audit.factories import actor_event, follow_up
from bot.backends.source.whats_changing import checks_state
from bot.catalog.config import OpsbotConfig
from bot.catalog.runbooks import Runbook
from bot.errors import PolicyDenied
from bot.requests.groups import GroupDirectory
from bot.requests.policy import ChangeFacts, Decision, Subject, evaluate
from bot.store.audit_writer import AuditWriter
from bot.store.models import RequestRow
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
        facts: ChangeFacts | None = None,
    ) -> Decision:
        """The policy's decision for ``actor`` doing ``command`` on service/env; raises ``PolicyDenied`` (audited) if not allowed.

        ``received`` (the ``command_received`` event of a runbook request) is written with the
        denial, so the audit log shows what was asked and why it was refused, in one batch.
        ``facts`` are what the plan found (the new version's checks), when asked again after it.
        """
        decision = evaluate(
            self._config, self._groups, command=command, runbook=runbook, service=service, env=env,
            params=dict(params), subject=Subject(actor.user_id, channel), now=self._clock(), facts=facts,
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

    def refuse(self, *, command: str, actor: Actor, channel: str, outcome: str, reason: str) -> NoReturn:
        """A refusal that is no policy rule's (a wrong channel, a rate limit): audited as ``denied``, raised the same way."""
        event = actor_event(EventType.DENIED, actor, channel=channel, runbook=command, outcome=outcome, reason=reason)
        self._audit_writer.append(event)
        raise PolicyDenied(reason, markup=True)

    def allows(self, *, command: str, service: str, env: str, actor: Actor, channel: str) -> bool:
        """The policy's yes or no, unaudited: for filtering what a list shows (``history``, ``approvals``)."""
        decision = evaluate(
            self._config, self._groups, command=command, runbook=None, service=service, env=env, params={},
            subject=Subject(actor.user_id, channel), now=self._clock(),
        )  # fmt: skip
        return decision.allowed

    def governs(self, command: str) -> bool:
        """Whether some policy rule names ``command`` itself (``read`` is open until a rule names it)."""
        return any(command in rule.runbooks for rule in self._config.policy.rules)

    def recheck(self, row: RequestRow, runbook: Runbook | None, approvers: Sequence[str]) -> str | None:
        """The policy now, for a stored request and the people who approved it: None if it may go on, else why not.

        The facts are the approved plan's (its checks as shown), so a check that turned green or
        red after the approval neither adds nor drops an approval: the approval was for what it saw.
        """
        decision = evaluate(
            self._config, self._groups, command=row.runbook, runbook=runbook, service=row.service, env=row.env,
            params=dict(row.params), subject=Subject(row.requester_id, row.channel), now=self._clock(),
            facts=ChangeFacts(checks=checks_state(row.plan or [])),
        )  # fmt: skip
        if not decision.allowed:
            return decision.reason
        needed = decision.approval
        if row.plan and needed.count > row.approvals_required:
            asked = row.approvals_required
            return f"{needed.describe(row.env)}, and #{row.id} was asked with {asked}; request it again."
        if needed.count == 0 or row.approvals_required == 0:
            return None
        still = [user for user in dict.fromkeys(approvers) if user != row.requester_id and self._groups.is_member(user, needed.approvers)]
        if len(still) < needed.count:
            gone = [user for user in approvers if user not in still]
            names = ", ".join(f"<@{user}>" for user in gone) or "nobody"
            groups = ", ".join(f"@{group}" for group in needed.approvers)
            return f"approvals must come from {groups}, and {names} no longer may approve (#{row.id} has {len(still)} of {needed.count})."
        return None
