"""The AWS backend: ECS services and EC2 Auto Scaling groups through boto3.

``AwsBackend`` is created once per process (``Backends.aws``) and hands out handles bound
to one target and one caller, so role sessions carry the Slack user's name into
CloudTrail; ``health_of`` answers the digest and the health watch in bulk.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.backends.aws.asg import AutoScalingGroup
from bot.backends.aws.ecs import EcsService
from bot.backends.aws.health import health_of
from bot.backends.aws.session import BOT_ACTOR, Actor, AwsPlace, AwsSessions
from bot.catalog.config import AsgTarget, AwsAccess, EcsTarget
from bot.service_health import ServiceHealth, TargetRef

__all__ = ["Actor", "AwsBackend"]


class AwsBackend:
    """Per-process entry point; thread-safe (sessions and clients are shared)."""

    def __init__(self, access: AwsAccess, *, sessions: AwsSessions | None = None) -> None:
        self.access = access
        self.sessions = sessions or AwsSessions(access)

    def ecs(self, target: EcsTarget, actor: Actor = BOT_ACTOR) -> EcsService:
        """The ECS service of ``target``, called with ``actor``'s role session."""
        place = AwsPlace.of(target)
        return EcsService(target, lambda: self.sessions.ecs(place, actor))

    def asg(self, target: AsgTarget, actor: Actor = BOT_ACTOR) -> AutoScalingGroup:
        """The Auto Scaling group of ``target``, called with ``actor``'s role session."""
        place = AwsPlace.of(target)
        return AutoScalingGroup(target, lambda: self.sessions.autoscaling(place, actor))

    def health_of(self, items: Sequence[tuple[TargetRef, EcsTarget | AsgTarget]]) -> list[ServiceHealth]:
        """Health of every item in order, with a few batched calls (see ``health.py``)."""
        return health_of(self.sessions, items)
