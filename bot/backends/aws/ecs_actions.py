"""Runbook actions for ECS services (deploy, rollback, scale, status) and ECS rollback support.

Each action reads before it writes, so ``plan`` (what an approver sees) and ``run`` start
from the same facts, and every AWS call is made as the requesting Slack user (their role
session name reaches CloudTrail). The decisions live in ``ecs_rollout``/``ecs``; this module
only wires them to ``StepContext`` and words the results.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from bot.backends.aws.ecs import (
    EcsService,
    TaskDefinition,
    choose_container,
    deployment_id_of,
    previous_revision,
    service_task_definition,
)
from bot.backends.aws.ecs_rollout import (
    RolloutStatus,
    family_and_revision,
    rollout_status,
    short_task_definition,
)
from bot.backends.aws.step_actor import actor_of
from bot.backends.images import ImageChoiceArgs, with_tag
from bot.catalog.actions import (
    Action,
    ActionArgs,
    Change,
    RollbackSupport,
    StepContext,
    StepResult,
)
from bot.catalog.config import EcsTarget, TargetKind
from bot.errors import ActionFailed

if TYPE_CHECKING:
    from mypy_boto3_ecs.type_defs import (
        DeploymentTypeDef,
        ServiceEventTypeDef,
        ServiceTypeDef,
    )

RECENT_EVENTS = 5


# --- ECS -------------------------------------------------------------------------------


class EcsDeployArgs(ImageChoiceArgs):
    """Exactly one of ``tag`` (keeps the repository) or ``image`` (a full reference)."""

    digest_for_tag: ClassVar[bool] = False
    """ECS's own console and CLI resolve tags, not digests."""

    container: str | None = None
    poll_seconds: float = Field(default=5, gt=0, le=300)
    wait: bool = True


class EcsDeploy(Action[EcsDeployArgs]):
    """Register a copy of the running task definition with a new image and roll it out."""

    name: ClassVar[str] = "ecs.deploy"
    target_kind: ClassVar[TargetKind | None] = "ecs"
    args_model = EcsDeployArgs
    mutating: ClassVar[bool] = True
    summary: ClassVar[str] = "Deploy a new image (or tag) to an ECS service and wait for the rollout."

    def plan(self, ctx: StepContext, args: EcsDeployArgs) -> list[Change]:
        ecs = ecs_service(ctx)
        change = _image_change(ecs, args)
        predicted = f"{change.current.family}:{ecs.latest_revision(change.current.family) + 1}"
        return [
            Change("task definition", change.current.short_name, predicted),
            Change(f"image of {change.container}", change.before, change.after),
        ]

    def run(self, ctx: StepContext, args: EcsDeployArgs) -> StepResult:
        ecs = ecs_service(ctx)
        change = _image_change(ecs, args)
        ctx.check()
        registered = ecs.register_with_image(change.current, change.container, change.after)
        ctx.progress(f"registered {registered.short_name} ({change.container}: {change.after})")
        service = ecs.use_task_definition(registered.arn)
        data = {
            "task_definition": registered.arn,
            "previous_task_definition": change.current.arn,
            "container": change.container,
            "image": change.after,
            "previous_image": change.before,
        }
        moved = f"{change.current.short_name} → {registered.short_name}"
        if not args.wait:
            return StepResult(summary=f"{ecs.target.service}: rollout of {moved} started (not waiting)", data=data)
        status = ecs.wait_for_rollout(ctx, poll_seconds=args.poll_seconds, deployment_id=deployment_id_of(service))
        return StepResult(
            summary=f"deployed {change.after} to {ecs.target.service}: {moved}, {status.counts}",
            details=(f"image of {change.container}: {change.before} → {change.after}",),
            data=data,
        )


class EcsRollbackArgs(ActionArgs):
    """``to_revision`` defaults to the newest ACTIVE revision below the running one."""

    to_revision: int | None = Field(default=None, ge=1)
    poll_seconds: float = Field(default=5, gt=0, le=300)
    wait: bool = True


class EcsRollbackAction(Action[EcsRollbackArgs]):
    """Point the service back at an earlier task definition revision and wait."""

    name: ClassVar[str] = "ecs.rollback"
    target_kind: ClassVar[TargetKind | None] = "ecs"
    args_model = EcsRollbackArgs
    mutating: ClassVar[bool] = True
    summary: ClassVar[str] = "Roll an ECS service back to the previous (or a given) task definition revision."

    def plan(self, ctx: StepContext, args: EcsRollbackArgs) -> list[Change]:
        ecs = ecs_service(ctx)
        current_arn, target_arn = _rollback_choice(ecs, args)
        changes = [Change("task definition", short_task_definition(current_arn), short_task_definition(target_arn))]
        return changes + image_changes(ecs.task_definition(current_arn), ecs.task_definition(target_arn))

    def run(self, ctx: StepContext, args: EcsRollbackArgs) -> StepResult:
        ecs = ecs_service(ctx)
        current_arn, target_arn = _rollback_choice(ecs, args)
        moved = f"{short_task_definition(current_arn)} → {short_task_definition(target_arn)}"
        data = {"task_definition": target_arn, "previous_task_definition": current_arn}
        if current_arn == target_arn:
            already = f"{ecs.target.service} already runs {short_task_definition(target_arn)}"
            return StepResult(summary=already, data=data)
        ctx.check()
        service = ecs.use_task_definition(target_arn)
        if not args.wait:
            return StepResult(summary=f"{ecs.target.service}: rollback {moved} started (not waiting)", data=data)
        status = ecs.wait_for_rollout(ctx, poll_seconds=args.poll_seconds, deployment_id=deployment_id_of(service))
        return StepResult(summary=f"rolled {ecs.target.service} back: {moved}, {status.counts}", data=data)


class EcsScaleArgs(ActionArgs):
    count: int = Field(ge=0)
    poll_seconds: float = Field(default=5, gt=0, le=300)
    wait: bool = True


class EcsScale(Action[EcsScaleArgs]):
    """Set the service's desired count and wait until that many tasks run."""

    name: ClassVar[str] = "ecs.scale"
    target_kind: ClassVar[TargetKind | None] = "ecs"
    args_model = EcsScaleArgs
    mutating: ClassVar[bool] = True
    summary: ClassVar[str] = "Change an ECS service's desired task count."

    def plan(self, ctx: StepContext, args: EcsScaleArgs) -> list[Change]:
        service = ecs_service(ctx).describe()
        return [Change("desired count", str(service.get("desiredCount", 0)), str(args.count))]

    def run(self, ctx: StepContext, args: EcsScaleArgs) -> StepResult:
        ecs = ecs_service(ctx)
        before = ecs.describe().get("desiredCount", 0)
        ctx.check()
        service = ecs.set_desired_count(args.count)
        data = {"desired_count": args.count, "previous_desired_count": before}
        moved = f"desired count {before} → {args.count}"
        if not args.wait:
            return StepResult(summary=f"{ecs.target.service}: {moved} (not waiting)", data=data)
        status = ecs.wait_for_rollout(ctx, poll_seconds=args.poll_seconds, deployment_id=deployment_id_of(service))
        return StepResult(summary=f"scaled {ecs.target.service}: {moved}, {status.counts}", data=data)


class EcsStatusArgs(ActionArgs):
    """No arguments."""


class EcsStatus(Action[EcsStatusArgs]):
    """Deployments, task definition, images and recent events of an ECS service."""

    name: ClassVar[str] = "ecs.status"
    target_kind: ClassVar[TargetKind | None] = "ecs"
    args_model = EcsStatusArgs
    mutating: ClassVar[bool] = False
    summary: ClassVar[str] = "Show an ECS service's deployments, task definition, images and recent events."

    def run(self, ctx: StepContext, args: EcsStatusArgs) -> StepResult:
        ecs = ecs_service(ctx)
        service = ecs.describe()
        definition = ecs.current_task_definition(service)
        status = rollout_status(service)
        target = ecs.target
        details = (
            f"task definition {definition.short_name}",
            *(f"container {name}: {image}" for name, image in definition.images().items()),
            *(deployment_line(d) for d in service.get("deployments", [])),
            *(event_line(e) for e in service.get("events", [])[:RECENT_EVENTS]),
        )
        return StepResult(
            summary=f"{target.service} ({target.cluster}, {target.region}): {status.text}; {_state_words(status)}",
            details=details,
            data={
                "desired": service.get("desiredCount", 0),
                "running": service.get("runningCount", 0),
                "pending": service.get("pendingCount", 0),
                "task_definition": definition.arn,
                "images": definition.images(),
                "rollout": status.state,
            },
        )


class EcsRollback(RollbackSupport):
    """``on_failure: rollback`` for ECS: return to the task definition that ran before."""

    target_kind: ClassVar[TargetKind] = "ecs"
    poll_seconds: ClassVar[float] = 5.0

    def capture(self, ctx: StepContext) -> dict[str, Any]:
        ecs = ecs_service(ctx)
        return {"task_definition": service_task_definition(ecs.describe(), ecs.resource)}

    def restore(self, ctx: StepContext, point: dict[str, Any]) -> StepResult:
        arn = point.get("task_definition")
        if not isinstance(arn, str) or not arn:
            raise ActionFailed(f"cannot roll back {ctx.service}/{ctx.env}: no task definition was recorded")
        ecs = ecs_service(ctx)
        current = service_task_definition(ecs.describe(), ecs.resource)
        # Even when nothing changed (or ECS's circuit breaker already went back), wait for
        # the service to settle: restore promises a healthy service, not just an API call.
        deployment_id = deployment_id_of(ecs.use_task_definition(arn)) if current != arn else None
        status = ecs.wait_for_rollout(ctx, poll_seconds=self.poll_seconds, deployment_id=deployment_id)
        moved = f"{short_task_definition(current)} → {short_task_definition(arn)}" if current != arn else "unchanged"
        return StepResult(
            summary=f"restored {ecs.target.service} to {short_task_definition(arn)} ({moved}), {status.counts}",
            data={"task_definition": arn, "replaced_task_definition": current},
        )


# --- helpers ---------------------------------------------------------------------------


def ecs_service(ctx: StepContext) -> EcsService:
    """The step's ECS service, called as the requesting user."""
    if not isinstance(ctx.target, EcsTarget):
        raise ActionFailed(f"{ctx.service}/{ctx.env} is not an ECS service ({ctx.target.describe()})")
    return ctx.backends.aws.ecs(ctx.target, actor_of(ctx))


def image_changes(before: TaskDefinition, after: TaskDefinition) -> list[Change]:
    """One ``image of <container>`` line per container whose image differs."""
    old, new = before.images(), after.images()
    return [
        Change(f"image of {name}", old.get(name), new.get(name)) for name in dict.fromkeys([*old, *new]) if old.get(name) != new.get(name)
    ]


def deployment_line(deployment: DeploymentTypeDef) -> str:
    """``PRIMARY checkout:42 IN_PROGRESS: 3/6 running, 3 pending``."""
    line = (
        f"{deployment.get('status', '?')} {short_task_definition(deployment.get('taskDefinition'))} "
        f"{deployment.get('rolloutState', '(no rollout state)')}: "
        f"{deployment.get('runningCount', 0)}/{deployment.get('desiredCount', 0)} running, "
        f"{deployment.get('pendingCount', 0)} pending"
    )
    if deployment.get("rolloutState") == "FAILED" and deployment.get("rolloutStateReason"):
        line += f" ({deployment.get('rolloutStateReason')})"
    return line


def event_line(event: ServiceEventTypeDef) -> str:
    created = event.get("createdAt")
    when = created.strftime("%Y-%m-%d %H:%M:%S %Z").strip() if isinstance(created, datetime) else "?"
    return f"{when} {event.get('message', '')}"


@dataclass(frozen=True)
class _ImageChange:
    current: TaskDefinition
    container: str
    before: str
    after: str


def _image_change(ecs: EcsService, args: EcsDeployArgs) -> _ImageChange:
    """Read the running task definition and work out the container and its new image."""
    service = ecs.describe()
    current = ecs.current_task_definition(service)
    container = choose_container(current, args.container or ecs.target.container)
    before = current.images()[container]
    after = args.image if args.image is not None else with_tag(before, _required(args.tag))
    return _ImageChange(current=current, container=container, before=before, after=after)


def _rollback_choice(ecs: EcsService, args: EcsRollbackArgs) -> tuple[str, str]:
    """(running task definition ARN, the one to go back to)."""
    service: ServiceTypeDef = ecs.describe()
    current_arn = service_task_definition(service, ecs.resource)
    family, current_revision = family_and_revision(current_arn)
    revisions = ecs.active_revisions(family)
    wanted = previous_revision(revisions, current=current_revision, wanted=args.to_revision, family=family)
    return current_arn, revisions[wanted]


def _state_words(status: RolloutStatus) -> str:
    if status.state == "failed":
        return f"rollout FAILED: {status.reason}"
    if status.state == "done":
        return "steady"
    return "rollout in progress" if status.deploying else "below desired count"


def _required(value: str | None) -> str:
    assert value is not None  # guaranteed by EcsDeployArgs._tag_or_image
    return value
