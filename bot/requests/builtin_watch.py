"""Built-ins that reach the watch: ``/ops digest`` and the incident buttons.

Why the Roll back button does not roll back: a click must not be a way around the policy.
It becomes the command a person could have typed (``rollback <service> in <env>``) and goes
through the intake like any typed command: the same policy rules, freeze windows, locks and
approvals (production needs one) as any other request, audited the same way.
"""

from __future__ import annotations

from bot.errors import PolicyDenied, RequestNotFound
from bot.messages import Message, Replier, channel_link, escape, mention
from bot.requests.desk import Desk
from bot.requests.intake import Intake
from bot.requests.invocation import Click, Invocation
from bot.store import slots as slot_store
from commands.parser import CommandRequest


def post_digest(desk: Desk, parsed: CommandRequest, invocation: Invocation, reply: Replier) -> None:
    """Post a digest now: the named channel's configured one, else every service to this channel.

    Under the policy like a runbook (a rule naming ``digest`` for env ``*``); only to the channel it
    was asked in or a configured digest channel (a digest names images, failures and who deployed);
    at most one ad-hoc digest per channel a minute, across replicas; and it never moves a
    configured digest's "since" window.
    """
    named = str(parsed.params.get("channel") or "").lstrip("#")
    channel = named or invocation.channel
    configured = [digest.channel for digest in desk.digests.configured]
    if channel != invocation.channel and channel not in configured:
        where = ", ".join(channel_link(item) for item in configured) or "none is configured"
        desk.gate.refuse(
            command="digest", actor=invocation.actor, channel=invocation.channel, outcome="wrong_channel",
            reason=f"`/ops digest` posts only to this channel or a configured digest channel ({where}).",
        )  # fmt: skip
    desk.gate.authorize(command="digest", service="*", env="*", params={}, actor=invocation.actor, channel=invocation.channel)
    wait = _ad_hoc_wait(desk, channel)
    if wait is not None:
        desk.gate.refuse(
            command="digest", actor=invocation.actor, channel=invocation.channel, outcome="rate_limited",
            reason=f"A digest was asked for {channel_link(channel)} less than a minute ago; try again in {wait} s.",
        )  # fmt: skip
    digest = desk.digests.for_channel(channel)
    result = desk.digests.post(digest, actor=invocation.actor, force=True, remember=False)
    if result.outcome != "posted":
        reply.private(Message.plain(f"The digest could not be posted to {channel_link(channel)}; try again in a minute."))
    elif channel != invocation.channel:
        reply.private(Message.plain(f"Posted the digest to {channel_link(channel)}."))


def _ad_hoc_wait(desk: Desk, channel: str) -> int | None:
    """Claim this minute's ad-hoc digest slot for ``channel`` (shared by every replica); seconds to wait if taken."""
    now = desk.clock()
    minute = now.replace(second=0, microsecond=0)
    with desk.database.transaction() as session:
        if slot_store.claim(session, job_id=f"adhoc-digest:{channel}", slot=minute.isoformat(), owner="digest", now=now):
            return None
    return max(1, 60 - now.second)


def roll_back_incident(desk: Desk, intake: Intake, click: Click, reply: Replier) -> None:
    """Roll back = the ordinary rollback request for the incident's service/env (policy and approvals apply)."""
    incident = desk.incidents.live_incident(incident_id(click.value))
    invocation = Invocation(actor=click.actor, channel=click.channel, text=f"rollback {incident.service} in {incident.env}")
    intake.request(intake.parse_audited(invocation), invocation, reply)


def acknowledge_incident(desk: Desk, intake: Intake, click: Click, reply: Replier) -> None:
    """Acknowledge = "I am on it": only the service's owners, its on-call approvers, or whom a policy rule for `acknowledge` allows."""
    incident = desk.incidents.live_incident(incident_id(click.value))
    if not _owner_or_on_call(desk, incident.service, incident.env, click.actor.user_id):
        try:
            desk.gate.authorize(
                command="acknowledge", service=incident.service, env=incident.env, params={}, actor=click.actor, channel=click.channel
            )
        except PolicyDenied as denied:
            who = ", ".join(_responders(desk, incident.service, incident.env)) or "its owners"
            raise PolicyDenied(
                f"Only the people who answer for {escape(incident.service)} ({who}) may acknowledge incident #{incident.id}; "
                f"nothing was changed. ({denied.user_message})",
                markup=True,
            ) from denied
    desk.incidents.acknowledge(incident.id, click.actor)


def _owner_or_on_call(desk: Desk, service: str, env: str, user_id: str) -> bool:
    """An owner of the service (a user id or a group), or an approver of its rollbacks there (its on-call)."""
    return any(user_id in _members(desk, responder) for responder in _responder_ids(desk, service, env))


def _responders(desk: Desk, service: str, env: str) -> list[str]:
    return [mention(item) if item[:1] in ("U", "W") else f"@{escape(item.lstrip('@'))}" for item in _responder_ids(desk, service, env)]


def _responder_ids(desk: Desk, service: str, env: str) -> list[str]:
    config = desk.catalog.config
    entry = config.services.get(service)
    owners = list(entry.owners) if entry is not None else []
    rule = next((rule for rule in config.policy.rules if rule.matches("rollback", service, env)), None)
    on_call = [f"@{group}" for group in (rule.approvals.approvers if rule is not None and rule.approvals is not None else [])]
    return list(dict.fromkeys([*owners, *on_call]))


def _members(desk: Desk, responder: str) -> frozenset[str]:
    """``@group`` is a configured group (which may itself name Slack user groups); anything else is a user id."""
    if responder.startswith("@") and responder[1:] in desk.catalog.config.groups:
        return desk.groups.members(responder[1:])
    return frozenset({responder})


def incident_id(value: str) -> int:
    if not value.isdigit() or len(value) > 10:
        raise RequestNotFound("That button does not belong to an incident opsbot knows; it may come from another app.")
    return int(value)
