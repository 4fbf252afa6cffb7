"""Steps that change what a Deployment runs: set_image, wait_rollout, rollback, and ``on_failure: rollback``.

Each mirrors the kubectl command an operator would type (``kubectl set image``, ``rollout
status``, ``rollout undo``). Plans use a read plus a server-side dry run (``dryRun=All``) of the
very patch ``run`` would send: the approver sees what the API server would actually store,
after its validation, defaulting and admission webhooks (an image policy or a quota rejection
shows up at plan time, not after approval). Plans never include wall-clock values, so a plan
computed at approval time equals the one computed at run time.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import Field

from bot.backends.images import ImageChoiceArgs, with_tag
from bot.backends.kubernetes.drift_guard import drift_check
from bot.backends.kubernetes.errors import ChangedSinceRead
from bot.backends.kubernetes.health import container_images, primary_image
from bot.backends.kubernetes.rollout import (
    RollbackChoice,
    RollbackRefused,
    choose_rollback,
    revision_of,
    rollout_status,
    selector_string,
)
from bot.backends.kubernetes.step_support import (
    MAX_TEMPORARY_POLL_ERRORS,
    choose_container,
    cluster_api,
    planned_deployment,
    read_deployment,
    read_deployment_for_plan,
    replicas_text,
    resource_version_of,
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
    RollbackSupport,
    StepContext,
    StepResult,
)
from bot.catalog.config import KubernetesTarget, TargetKind
from bot.errors import ActionFailed, StepTimeout, TargetChanged, TemporaryActionError

# --------------------------------------------------------------------------- set_image


class SetImageArgs(ImageChoiceArgs):
    container: str | None = None


@dataclass(frozen=True)
class ImageChange:
    container: str
    before: str
    after: str

    def patch(self) -> dict[str, Any]:
        """A strategic merge patch that touches only this container (merged by name)."""
        containers = [{"name": self.container, "image": self.after}]
        return {"spec": {"template": {"spec": {"containers": containers}}}}


def image_change(deployment: dict[str, Any], target: KubernetesTarget, args: SetImageArgs) -> ImageChange:
    images = container_images(deployment)
    what = target.describe()
    container = choose_container(images, args.container or target.container, what)
    before = images[container]
    after = args.image if args.image is not None else with_tag(before, args.tag or "")
    return ImageChange(container=container, before=before, after=after)


class SetImage(Action[SetImageArgs]):
    """``kubectl set image``: change one container's image with a strategic merge patch.

    Containers merge by name, so the patch touches only the named container even if
    someone changed another one meanwhile. The plan is a read plus a server-side dry run
    of the same patch (see the module docstring for why).
    """

    name: ClassVar[str] = "kubernetes.set_image"
    target_kind: ClassVar[TargetKind | None] = "kubernetes"
    args_model = SetImageArgs
    mutating: ClassVar[bool] = True
    summary: ClassVar[str] = "Set a container's image (or just its tag) on the Deployment."
    cluster_access: ClassVar[tuple[str, ...]] = ("get deployments", "patch deployments")

    def plan(self, ctx: StepContext, args: SetImageArgs) -> list[Change]:
        target = step_target(ctx)
        deployment = read_deployment_for_plan(ctx)
        guard = drift_check(deployment, target, ctx.service, ctx.env)
        change = image_change(deployment, target, args)
        result = cluster_api(ctx).patch_deployment(
            target.namespace, target.deployment, change.patch(), patch_type="strategic", dry_run=True
        )
        after = container_images(result).get(change.container, change.after)
        return [Change("image", change.before, after), Change("replicas", replicas_text(deployment), replicas_text(result)), *guard]

    def run(self, ctx: StepContext, args: SetImageArgs) -> StepResult:
        target = step_target(ctx)
        deployment = planned_deployment(ctx) or retrying(ctx, lambda: read_deployment(ctx))
        change, result = _patch_image(ctx, target, args, deployment)
        verb = "unchanged" if change.before == change.after else f"{change.before} → {change.after}"
        return StepResult(
            summary=f"image {verb} (container {change.container} of {target.describe()})",
            data={
                "container": change.container,
                "image_before": change.before,
                "image_after": change.after,
                "generation": (result.get("metadata") or {}).get("generation"),
            },
        )


MAX_STALE_READS = 3
"""Times ``set_image`` reads again after its PATCH was refused as stale by a change that does not matter to it."""


def _patch_image(
    ctx: StepContext, target: KubernetesTarget, args: SetImageArgs, deployment: dict[str, Any]
) -> tuple[ImageChange, dict[str, Any]]:
    """PATCH the image against ``deployment`` as read (its resourceVersion a precondition), reading again only if it moved.

    The read is usually the run's plan check (``planned_deployment``): what the approver's plan
    was compared with is exactly what the PATCH applies to, and the rollback point taken from
    the same read is what ran before it. If anything changed since, the API server refuses the
    PATCH (409); a new pod template (someone else's deploy) ends the step with nothing changed
    (``TargetChanged``), while status, labels or replicas (the controller, an autoscaler) do not
    matter to an image patch, which is sent again against a fresh read.
    """
    for _ in range(MAX_STALE_READS):
        change = image_change(deployment, target, args)
        ctx.check()
        version = resource_version_of(deployment)
        send = functools.partial(
            cluster_api(ctx).patch_deployment, target.namespace, target.deployment, change.patch(), patch_type="strategic",
            resource_version=version,
        )  # fmt: skip
        try:
            result = retrying(ctx, send)
        except ChangedSinceRead:
            fresh = retrying(ctx, lambda: read_deployment(ctx))
            _refuse_if_redeployed(deployment, fresh, target)
            deployment = fresh
            continue
        return change, result
    raise TemporaryActionError(f"{target.describe()} kept changing while opsbot tried to set its image; nothing was changed, try again")


def _refuse_if_redeployed(read: dict[str, Any], fresh: dict[str, Any], target: KubernetesTarget) -> None:
    """``TargetChanged`` if the pod template or its revision moved between the two reads."""
    if spec_of(read).get("template") == spec_of(fresh).get("template") and revision_of(read) == revision_of(fresh):
        return
    raise TargetChanged(
        f"{target.describe()} changed since the run checked its plan (its pod template is no longer the one the plan was made "
        f"against: now {primary_image(fresh, target.container)}, revision {revision_of(fresh)}). Nothing was changed; request it again."
    )


# --------------------------------------------------------------------------- wait_rollout


class WaitRolloutArgs(ActionArgs):
    poll_seconds: float = Field(default=2, gt=0, le=60)


def wait_for_rollout(ctx: StepContext, poll_seconds: float) -> StepResult:
    """Poll until ``rollout_status`` says done or failed, like ``kubectl rollout status``.

    Cancellation and the deadline are honoured by ``ctx.wait``/``ctx.check``; a deadline
    is re-raised with the last rollout message so the user sees where it was stuck.
    """
    watch = _RolloutWatch(ctx)
    try:
        while True:
            ctx.check()
            result = watch.poll()
            if result is not None:
                return result
            ctx.wait(poll_seconds)
    except StepTimeout as exc:
        raise StepTimeout(f"rollout of {watch.target.describe()} did not finish in time: {watch.last_message}") from exc


class _RolloutWatch:
    """The state ``wait_for_rollout`` keeps between polls.

    Progress is reported only when the counts change, so a slow rollout does not flood
    the thread, and only once the controller has observed the new spec (until then the
    counts describe the previous rollout). A few consecutive temporary API errors (a 503
    during a control-plane upgrade) are ridden out rather than failing the deploy.
    """

    def __init__(self, ctx: StepContext) -> None:
        self.ctx = ctx
        self.target = step_target(ctx)
        self.api = cluster_api(ctx)
        self.last_message = "rollout not observed yet"
        self._last_counts: tuple[int, int, int] | None = None
        self._errors = 0

    def poll(self) -> StepResult | None:
        """One read: the result when done, ``ActionFailed`` when failed, else None."""
        deployment = self._read()
        if deployment is None:
            return None
        status = rollout_status(deployment)
        if status.failed:
            raise ActionFailed(f"rollout of {self.target.describe()} failed: {status.message}")
        if status.done:
            return _rolled_out(deployment)
        self.last_message = status.message
        self._report(deployment)
        return None

    def _read(self) -> dict[str, Any] | None:
        try:
            deployment = self.api.read_deployment(self.target.namespace, self.target.deployment)
        except TemporaryActionError as exc:
            self._errors += 1
            if self._errors > MAX_TEMPORARY_POLL_ERRORS:
                raise
            self.ctx.progress(f"{exc.user_message} (retrying)")
            return None
        self._errors = 0
        return deployment

    def _report(self, deployment: dict[str, Any]) -> None:
        counts = _counts(deployment)
        if counts != self._last_counts and _observed(deployment):
            self.ctx.progress(f"{counts[0]}/{counts[1]} pods updated, {counts[2]} available")
            self._last_counts = counts


def _observed(deployment: dict[str, Any]) -> bool:
    """Whether the status describes the current spec (before that, its counts are stale)."""
    generation = (deployment.get("metadata") or {}).get("generation") or 0
    return int(status_of(deployment).get("observedGeneration") or 0) >= int(generation)


def _counts(deployment: dict[str, Any]) -> tuple[int, int, int]:
    status = status_of(deployment)
    desired = spec_of(deployment).get("replicas")
    return (
        int(status.get("updatedReplicas") or 0),
        int(desired if desired is not None else status.get("replicas") or 0),
        int(status.get("availableReplicas") or 0),
    )


def _rolled_out(deployment: dict[str, Any]) -> StepResult:
    updated, desired, available = _counts(deployment)
    revision = revision_of(deployment)
    return StepResult(
        summary=f"rolled out: {updated}/{desired} updated, {available} available, revision {revision}",
        data={"updated": updated, "desired": desired, "available": available, "revision": revision},
    )


class WaitRollout(Action[WaitRolloutArgs]):
    """``kubectl rollout status``: wait until the Deployment's rollout finishes or fails."""

    name: ClassVar[str] = "kubernetes.wait_rollout"
    target_kind: ClassVar[TargetKind | None] = "kubernetes"
    args_model = WaitRolloutArgs
    mutating: ClassVar[bool] = False
    summary: ClassVar[str] = "Wait for the Deployment's rollout to complete (fails on ProgressDeadlineExceeded)."
    cluster_access: ClassVar[tuple[str, ...]] = ("get deployments",)

    def run(self, ctx: StepContext, args: WaitRolloutArgs) -> StepResult:
        return wait_for_rollout(ctx, args.poll_seconds)


# --------------------------------------------------------------------------- rollback


class RollbackArgs(ActionArgs):
    to_revision: int | None = Field(default=None, ge=0)


def plan_rollback(ctx: StepContext, to_revision: int | None) -> tuple[dict[str, Any], RollbackChoice]:
    """Read the Deployment and its ReplicaSets, and choose as ``kubectl rollout undo`` would."""
    target = step_target(ctx)
    api = cluster_api(ctx)
    deployment = api.read_deployment(target.namespace, target.deployment)
    selector = selector_string(spec_of(deployment).get("selector"))
    replicasets = api.list_replicasets(target.namespace, selector)
    try:
        return deployment, choose_rollback(deployment, replicasets, to_revision)
    except RollbackRefused as exc:
        raise ActionFailed(f"cannot roll back {target.describe()}: {exc}") from exc


def perform_rollback(ctx: StepContext, to_revision: int | None) -> StepResult:
    """Roll back (or report that the template already matches) — shared by the action and restore."""
    target = step_target(ctx)
    deployment, choice = plan_rollback(ctx, to_revision)
    before = primary_image(deployment, target.container)
    after = primary_image({"spec": {"template": choice.template}}, target.container)
    data = {"revision": choice.revision, "from_revision": choice.current_revision, "image": after}
    if choice.already_current:
        return StepResult(
            summary=f"skipped rollback: {target.describe()} is already at that template (revision {choice.revision})",
            data={**data, "skipped": True},
        )
    ctx.check()
    retrying(ctx, lambda: cluster_api(ctx).patch_deployment(target.namespace, target.deployment, choice.patch, patch_type="json"))
    return StepResult(
        summary=f"rolled back {target.describe()} to revision {choice.revision} (image {before} → {after})",
        data={**data, "skipped": False},
    )


class Rollback(Action[RollbackArgs]):
    """``kubectl rollout undo [--to-revision]``: put an earlier ReplicaSet's template back.

    Done client-side as kubectl does (rollback.go), with the same JSON patch: replace
    ``/spec/template`` and ``/metadata/annotations``. A JSON patch rather than a strategic
    merge because an undo must replace the template wholesale; a merge would keep env
    vars, volumes or containers added since that revision.
    """

    name: ClassVar[str] = "kubernetes.rollback"
    target_kind: ClassVar[TargetKind | None] = "kubernetes"
    args_model = RollbackArgs
    mutating: ClassVar[bool] = True
    summary: ClassVar[str] = "Roll the Deployment back to the previous (or a given) revision."
    cluster_access: ClassVar[tuple[str, ...]] = ("get deployments", "list replicasets", "patch deployments")

    def plan(self, ctx: StepContext, args: RollbackArgs) -> list[Change]:
        target = step_target(ctx)
        deployment, choice = plan_rollback(ctx, args.to_revision)
        before_image = primary_image(deployment, target.container)
        current = text_or_none(choice.current_revision)
        if choice.already_current:
            return [Change("revision", current, current), Change("image", before_image, before_image)]
        result = cluster_api(ctx).patch_deployment(target.namespace, target.deployment, choice.patch, patch_type="json", dry_run=True)
        after_image = primary_image(result, target.container)
        return [Change("revision", current, str(choice.revision)), Change("image", before_image, after_image)]

    def run(self, ctx: StepContext, args: RollbackArgs) -> StepResult:
        return perform_rollback(ctx, args.to_revision)


# --------------------------------------------------------------------------- on_failure: rollback


class KubernetesRollback(RollbackSupport):
    """``on_failure: rollback`` for Deployments: remember the revision, undo to it, wait.

    ``restore`` uses the same code paths as ``kubernetes.rollback`` and
    ``kubernetes.wait_rollout``, so an automatic undo behaves exactly like a manual one
    (the restored template gets a new, higher revision, as with ``kubectl rollout undo``).
    """

    target_kind: ClassVar[TargetKind] = "kubernetes"

    def __init__(self, poll_seconds: float = 2.0) -> None:
        self.poll_seconds = poll_seconds

    def capture(self, ctx: StepContext) -> dict[str, Any]:
        """What runs now: the plan check's read when there is one (``set_image`` patches against that very read)."""
        deployment = planned_deployment(ctx) or read_deployment(ctx)
        return {"revision": revision_of(deployment), "image": primary_image(deployment, step_target(ctx).container)}

    def restore(self, ctx: StepContext, point: dict[str, Any]) -> StepResult:
        target = step_target(ctx)
        revision = point.get("revision")
        if not isinstance(revision, int) or revision <= 0:
            raise ActionFailed(f"cannot restore {target.describe()}: no revision was recorded before the run")
        undo = perform_rollback(ctx, revision)
        rolled_out = wait_for_rollout(ctx, self.poll_seconds)
        return StepResult(
            summary=f"restored {target.describe()} to revision {revision} (image {point.get('image')}); {rolled_out.summary}",
            details=(undo.summary, rolled_out.summary),
            data={"rollback": undo.data, "rollout": rolled_out.data},
        )
