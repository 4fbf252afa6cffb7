"""Who an AWS call is made as: the requesting Slack user, with their identity's tags when opsbot acts as them."""

from __future__ import annotations

from bot.backends.aws.session import Actor
from bot.catalog.actions import StepContext


def actor_of(ctx: StepContext) -> Actor:
    """The requesting user; with an identity (``impersonate`` mode), also the source identity and session tags."""
    identity = ctx.identity
    if identity is None:
        return Actor(id=ctx.actor_id, name=ctx.actor_name)
    tags = tuple(identity.session_tags(ctx.runbook, ctx.request_id).items())
    return Actor(
        id=ctx.actor_id, name=ctx.actor_name, source_identity=identity.source_identity, tags=tags, transitive=identity.transitive_tags
    )
