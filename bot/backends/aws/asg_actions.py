"""Runbook actions for Auto Scaling groups: set the desired capacity, show capacity and instances.

Every call is made as the requesting Slack user (``step_actor``); the capacity rules live in
``asg``, this module wires them to ``StepContext`` and words the results.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from bot.backends.aws.asg import (
    AutoScalingGroup,
    check_capacity,
    health_counts,
    launch_source,
    lifecycle_counts,
)
from bot.backends.aws.step_actor import actor_of
from bot.catalog.actions import Action, ActionArgs, Change, StepContext, StepResult
from bot.catalog.config import AsgTarget, TargetKind
from bot.errors import ActionFailed


class AsgScaleArgs(ActionArgs):
    capacity: int = Field(ge=0)


class AsgScale(Action[AsgScaleArgs]):
    """Set an Auto Scaling group's desired capacity within its min..max."""

    name: ClassVar[str] = "asg.scale"
    target_kind: ClassVar[TargetKind | None] = "asg"
    args_model = AsgScaleArgs
    mutating: ClassVar[bool] = True
    summary: ClassVar[str] = "Change an Auto Scaling group's desired capacity (within min..max)."

    def plan(self, ctx: StepContext, args: AsgScaleArgs) -> list[Change]:
        group = asg_group(ctx)
        described = group.describe()
        check_capacity(described, args.capacity, group.target)
        before = described["DesiredCapacity"]
        if before == args.capacity:
            return [Change("desired capacity", str(before), str(before))]
        bounds = f"(min {described['MinSize']}, max {described['MaxSize']})"
        return [Change("desired capacity", str(before), f"{args.capacity} {bounds}")]

    def run(self, ctx: StepContext, args: AsgScaleArgs) -> StepResult:
        group = asg_group(ctx)
        described = group.describe()
        check_capacity(described, args.capacity, group.target)
        ctx.check()
        group.set_desired_capacity(args.capacity)
        before = described["DesiredCapacity"]
        return StepResult(
            summary=(
                f"{group.target.name} ({group.target.region}): desired capacity {before} → {args.capacity} "
                f"(min {described['MinSize']}, max {described['MaxSize']}); instances change in the background"
            ),
            data={"desired_capacity": args.capacity, "previous_desired_capacity": before},
        )


class AsgStatusArgs(ActionArgs):
    """No arguments."""


class AsgStatus(Action[AsgStatusArgs]):
    """Capacity and instances of an Auto Scaling group by lifecycle state and health."""

    name: ClassVar[str] = "asg.status"
    target_kind: ClassVar[TargetKind | None] = "asg"
    args_model = AsgStatusArgs
    mutating: ClassVar[bool] = False
    summary: ClassVar[str] = "Show an Auto Scaling group's capacity and instances by state and health."

    def run(self, ctx: StepContext, args: AsgStatusArgs) -> StepResult:
        group = asg_group(ctx)
        described = group.describe()
        lifecycle = lifecycle_counts(described)
        health = health_counts(described)
        source = launch_source(described)
        details = (
            *(f"{state}: {count}" for state, count in sorted(lifecycle.items())),
            *(f"{status}: {count}" for status, count in sorted(health.items())),
            *((f"launches from {source}",) if source else ()),
        )
        return StepResult(
            summary=(
                f"{group.target.name} ({group.target.region}): desired {described['DesiredCapacity']} "
                f"(min {described['MinSize']}, max {described['MaxSize']}), "
                f"{lifecycle.get('InService', 0)} in service, {health.get('Healthy', 0)} healthy"
            ),
            details=details,
            data={
                "desired": described["DesiredCapacity"],
                "min": described["MinSize"],
                "max": described["MaxSize"],
                "lifecycle": dict(lifecycle),
                "health": dict(health),
            },
        )


def asg_group(ctx: StepContext) -> AutoScalingGroup:
    """The step's Auto Scaling group, called as the requesting user."""
    if not isinstance(ctx.target, AsgTarget):
        raise ActionFailed(f"{ctx.service}/{ctx.env} is not an Auto Scaling group ({ctx.target.describe()})")
    return ctx.backends.aws.asg(ctx.target, actor_of(ctx))
