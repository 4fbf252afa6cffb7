"""Steps that leave the pod template's image alone: scale, restart, status (``kubectl scale``, ``rollout restart``, ``get``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import Field

from bot.backends.kubernetes.drift_guard import drift_check
from bot.backends.kubernetes.health import container_images, pod_restarts, primary_image
from bot.backends.kubernetes.rollout import (
    RESTARTED_AT_ANNOTATION,
    revision_of,
    rollout_status,
    selector_string,
)
from bot.backends.kubernetes.step_support import (
    cluster_api,
    read_deployment,
    replicas_text,
    retrying,
    spec_of,
    status_of,
    step_target,
    text_or_none,
)
from bot.catalog.actions import (
    Action,
    ActionArgs,
    Change,
    StepContext,
    StepResult,
)
from bot.catalog.config import TargetKind
from bot.errors import ActionFailed

# --------------------------------------------------------------------------- scale


class ScaleArgs(ActionArgs):
    replicas: int = Field(ge=0)


class Scale(Action[ScaleArgs]):
    """``kubectl scale``: a merge patch of ``spec.replicas`` through the scale subresource.

    The subresource is what RBAC grants for scaling (``deployments/scale``) and it cannot
    touch the pod template, so a scale never starts a rollout.
    """

    name: ClassVar[str] = "kubernetes.scale"
    target_kind: ClassVar[TargetKind | None] = "kubernetes"
    args_model = ScaleArgs
    mutating: ClassVar[bool] = True
    summary: ClassVar[str] = "Set the Deployment's replica count."
    cluster_access: ClassVar[tuple[str, ...]] = ("get deployments", "patch deployments/scale")

    def plan(self, ctx: StepContext, args: ScaleArgs) -> list[Change]:
        target = step_target(ctx)
        deployment = read_deployment(ctx)
        guard = drift_check(deployment, target, ctx.service, ctx.env)
        scale = cluster_api(ctx).patch_scale(target.namespace, target.deployment, args.replicas, dry_run=True)
        return [Change("replicas", replicas_text(deployment), text_or_none(spec_of(scale).get("replicas"))), *guard]

    def run(self, ctx: StepContext, args: ScaleArgs) -> StepResult:
        target = step_target(ctx)
        before = replicas_text(retrying(ctx, lambda: read_deployment(ctx)))
        ctx.check()
        scale = retrying(ctx, lambda: cluster_api(ctx).patch_scale(target.namespace, target.deployment, args.replicas))
        after = text_or_none(spec_of(scale).get("replicas"))
        return StepResult(
            summary=f"replicas {before} → {after} ({target.describe()})",
            data={"replicas_before": before, "replicas_after": after},
        )


# --------------------------------------------------------------------------- restart


class RestartArgs(ActionArgs):
    pass


def restart_patch(now: datetime) -> dict[str, Any]:
    """objectrestarter.go: stamp the template so every pod is replaced, rolling."""
    stamp = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT_ANNOTATION: stamp}}}}}


def _refuse_paused(deployment: dict[str, Any], what: str) -> None:
    if spec_of(deployment).get("paused"):
        raise ActionFailed(f"can't restart paused {what} (run rollout resume first)")


class Restart(Action[RestartArgs]):
    """``kubectl rollout restart``: set ``kubectl.kubernetes.io/restartedAt`` on the template."""

    name: ClassVar[str] = "kubernetes.restart"
    target_kind: ClassVar[TargetKind | None] = "kubernetes"
    args_model = RestartArgs
    mutating: ClassVar[bool] = True
    summary: ClassVar[str] = "Restart all pods of the Deployment with a rolling update."
    cluster_access: ClassVar[tuple[str, ...]] = ("get deployments", "patch deployments")

    def plan(self, ctx: StepContext, args: RestartArgs) -> list[Change]:
        target = step_target(ctx)
        deployment = read_deployment(ctx)
        guard = drift_check(deployment, target, ctx.service, ctx.env)
        _refuse_paused(deployment, target.describe())
        result = cluster_api(ctx).patch_deployment(
            target.namespace, target.deployment, restart_patch(datetime.now(UTC)), patch_type="strategic", dry_run=True
        )
        return [Change("pods", "running", f"restarted (rolling), replicas {replicas_text(result)}"), *guard]

    def run(self, ctx: StepContext, args: RestartArgs) -> StepResult:
        target = step_target(ctx)
        _refuse_paused(retrying(ctx, lambda: read_deployment(ctx)), target.describe())
        ctx.check()
        patch = restart_patch(datetime.now(UTC))
        result = retrying(
            ctx, lambda: cluster_api(ctx).patch_deployment(target.namespace, target.deployment, patch, patch_type="strategic")
        )
        stamp = patch["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT_ANNOTATION]
        return StepResult(
            summary=f"pods restarted (rolling), replicas {replicas_text(result)} ({target.describe()})",
            data={"restartedAt": stamp},
        )


# --------------------------------------------------------------------------- status


class StatusArgs(ActionArgs):
    pass


def _phase(deployment: dict[str, Any]) -> str:
    status = rollout_status(deployment)
    if status.done:
        return "rollout complete"
    if status.failed:
        return f"rollout failed: {status.message}"
    return "rollout in progress"


def status_details(deployment: dict[str, Any], pods: list[dict[str, Any]]) -> tuple[str, ...]:
    """The thread lines of ``kubernetes.status``: counts, images, revision, conditions, pods."""
    status = status_of(deployment)
    counts = (
        f"replicas: desired {replicas_text(deployment)}, ready {status.get('readyReplicas') or 0}, "
        f"updated {status.get('updatedReplicas') or 0}, available {status.get('availableReplicas') or 0}"
    )
    lines = [counts]
    lines += [f"image {name}: {image}" for name, image in container_images(deployment).items()]
    lines.append(f"revision: {revision_of(deployment)}")
    for condition in status.get("conditions") or []:
        lines.append(
            f"condition {condition.get('type')}={condition.get('status')} "
            f"({condition.get('reason') or '-'}): {condition.get('message') or ''}".rstrip(": ")
        )
    lines.append(f"rollout: {rollout_status(deployment, pods).message}")
    for pod in pods:
        name = (pod.get("metadata") or {}).get("name")
        phase = status_of(pod).get("phase") or "Unknown"
        lines.append(f"pod {name}: {pod_restarts(pod)} restarts ({phase})")
    return tuple(lines)


class Status(Action[StatusArgs]):
    """``kubectl get deployment`` + ``rollout status`` + pod restarts, in one message."""

    name: ClassVar[str] = "kubernetes.status"
    target_kind: ClassVar[TargetKind | None] = "kubernetes"
    args_model = StatusArgs
    mutating: ClassVar[bool] = False
    summary: ClassVar[str] = "Show the Deployment's replicas, image, revision, conditions and pod restarts."
    cluster_access: ClassVar[tuple[str, ...]] = ("get deployments", "list pods")

    def run(self, ctx: StepContext, args: StatusArgs) -> StepResult:
        target = step_target(ctx)
        deployment = read_deployment(ctx)
        selector = selector_string(spec_of(deployment).get("selector"))
        pods = cluster_api(ctx).list_pods(target.namespace, selector) if selector else []
        status = status_of(deployment)
        ready = status.get("readyReplicas") or 0
        image = primary_image(deployment, target.container)
        revision = revision_of(deployment)
        summary = (
            f"{ctx.service}/{ctx.env}: {ready}/{replicas_text(deployment)} ready, image {image}, revision {revision}, {_phase(deployment)}"
        )
        data = {"ready": ready, "desired": spec_of(deployment).get("replicas"), "image": image, "revision": revision}
        return StepResult(summary=summary, details=status_details(deployment, pods), data=data)
