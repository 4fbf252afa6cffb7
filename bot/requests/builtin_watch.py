"""Built-ins that reach the watch: ``/ops digest`` and the incident buttons.

Why the Roll back button does not roll back: a click must not be a way around the policy.
It becomes the command a person could have typed (``rollback <service> in <env>``) and goes
through the intake like any typed command: the same policy rules, freeze windows, locks and
approvals (production needs one) as any other request, audited the same way.
"""

from __future__ import annotations

from bot.errors import RequestNotFound
from bot.messages import Message, Replier, channel_link
from bot.requests.desk import Desk
from bot.requests.intake import Intake
from bot.requests.invocation import Click, Invocation
from commands.parser import CommandRequest


def post_digest(desk: Desk, parsed: CommandRequest, invocation: Invocation, reply: Replier) -> None:
    """Post a digest now: the named channel's configured one, else every service to this channel."""
    named = str(parsed.params.get("channel") or "").lstrip("#")
    channel = named or invocation.channel
    digest = desk.digests.for_channel(channel)
    result = desk.digests.post(digest, actor=invocation.actor, force=True)
    if result.outcome != "posted":
        reply.private(Message.plain(f"The digest could not be posted to {channel_link(channel)}; try again in a minute."))
    elif channel != invocation.channel:
        reply.private(Message.plain(f"Posted the digest to {channel_link(channel)}."))


def roll_back_incident(desk: Desk, intake: Intake, click: Click, reply: Replier) -> None:
    """Roll back = the ordinary rollback request for the incident's service/env (policy and approvals apply)."""
    incident = desk.incidents.live_incident(incident_id(click.value))
    invocation = Invocation(actor=click.actor, channel=click.channel, text=f"rollback {incident.service} in {incident.env}")
    intake.request(intake.parse_audited(invocation), invocation, reply)


def acknowledge_incident(desk: Desk, intake: Intake, click: Click, reply: Replier) -> None:
    desk.incidents.acknowledge(incident_id(click.value), click.actor)


def incident_id(value: str) -> int:
    if not value.isdigit() or len(value) > 10:
        raise RequestNotFound("That button does not belong to an incident opsbot knows; it may come from another app.")
    return int(value)
