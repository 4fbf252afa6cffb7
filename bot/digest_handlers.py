"""Built-in handlers for ``/ops digest`` and the incident buttons, and the wiring that creates their services.

Why the Roll back button does not roll back: a click must not be a way around the policy.
It becomes the command a person could have typed (``rollback <service> in <env>``) and
goes through ``Operations.handle_command``: the same policy rules, freeze windows, locks
and approvals (production needs one) as any other request, audited the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.digest import Digests, HealthItem, gather_health
from bot.errors import RequestNotFound
from bot.health import ServiceHealth
from bot.incidents import IncidentWatch
from bot.invocation import Invocation
from bot.messages import ButtonAction, Message, channel_link
from bot.notifier import Replier
from bot.operations import Operations
from commands.parser import CommandRequest


@dataclass(frozen=True)
class ScheduledWork:
    """What the scheduler runs: the digests and the health watch, sharing the app's backends and notifier."""

    digests: Digests
    watch: IncidentWatch


def install_digest_builtins(operations: Operations) -> ScheduledWork:
    """Register ``digest`` and the two incident buttons on ``operations``; return the services behind them."""
    backends = operations.backends

    def health(items: list[HealthItem]) -> list[ServiceHealth]:
        return gather_health(backends, items)

    digests = Digests(
        catalog=operations.catalog, database=operations.database, notifier=operations.notifier, clock=operations.clock, health=health
    )
    watch = IncidentWatch(
        config=operations.catalog.config, database=operations.database, notifier=operations.notifier, clock=operations.clock, health=health
    )
    handlers = _DigestHandlers(operations, digests, watch)
    operations.builtins.update(
        {
            "digest": handlers.digest,
            str(ButtonAction.INCIDENT_ROLLBACK): handlers.incident_rollback,
            str(ButtonAction.INCIDENT_ACK): handlers.incident_acknowledge,
        }
    )
    return ScheduledWork(digests=digests, watch=watch)


class _DigestHandlers:
    def __init__(self, operations: Operations, digests: Digests, watch: IncidentWatch) -> None:
        self.ops = operations
        self.digests = digests
        self.watch = watch

    def digest(self, parsed: CommandRequest, invocation: Invocation, reply: Replier) -> None:
        """Post a digest now: the named channel's configured one, else every service to this channel."""
        named = str(parsed.params.get("channel") or "").lstrip("#")
        channel = named or invocation.channel
        digest = self.digests.for_channel(channel)
        result = self.digests.post(digest, actor=invocation.actor, force=True)
        if result.outcome != "posted":
            reply.private(Message.plain(f"The digest could not be posted to {channel_link(channel)}; try again in a minute."))
        elif channel != invocation.channel:
            reply.private(Message.plain(f"Posted the digest to {channel_link(channel)}."))

    def incident_rollback(self, parsed: CommandRequest, invocation: Invocation, reply: Replier) -> None:
        """Roll back = the ordinary rollback request for the incident's service/env (policy and approvals apply)."""
        incident = self.watch.live_incident(_incident_id(parsed))
        command = f"rollback {incident.service} in {incident.env}"
        self.ops.handle_command(Invocation(actor=invocation.actor, channel=invocation.channel, text=command), reply)

    def incident_acknowledge(self, parsed: CommandRequest, invocation: Invocation, reply: Replier) -> None:
        self.watch.acknowledge(_incident_id(parsed), invocation.actor)


def _incident_id(parsed: CommandRequest) -> int:
    value = str(parsed.params.get("value") or "")
    if not value.isdigit() or len(value) > 10:
        raise RequestNotFound("That button does not belong to an incident opsbot knows; it may come from another app.")
    return int(value)
