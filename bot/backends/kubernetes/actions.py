"""Runbook steps for Kubernetes Deployments: set_image, wait_rollout, rollback, scale, restart, status.

Each action mirrors the kubectl command an operator would type (``kubectl set image``,
``rollout status``, ``rollout undo``, ``scale``, ``rollout restart``) so opsbot behaves the
way on-call engineers expect, and each mutating action's ``plan`` shows what would change
without changing anything.

Plans use a read plus a server-side dry run (``dryRun=All``) of the very patch ``run``
would send. The dry run costs one extra request, but the approver then sees what the
API server would actually store, after its validation, defaulting and admission webhooks
(an image policy or a quota rejection shows up at plan time, not after approval), and no
client-side patch semantics have to be re-implemented. The "before" side comes from the
read. Plans never include wall-clock values (e.g. the restart timestamp), so a plan
computed at approval time equals the one computed at run time.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

from pydantic import Field, field_validator, model_validator

from bot.actions.base import (
    Action,
    ActionArgs,
    Change,
    RollbackSupport,
    StepContext,
    StepResult,
)
from bot.backends.kubernetes.client import ClusterApi
from bot.backends.kubernetes.health import container_images, pod_restarts, primary_image
from bot.backends.kubernetes.rollout import (
    RESTARTED_AT_ANNOTATION,
    RollbackChoice,
    RollbackRefused,
    choose_rollback,
    revision_of,
    rollout_status,
    selector_string,
)
from bot.config import KubernetesTarget, TargetKind
from bot.errors import ActionFailed, StepTimeout, TemporaryActionError

MAX_TEMPORARY_POLL_ERRORS = 3
"""Consecutive temporary API errors ``wait_rollout`` rides out before giving up."""
MAX_TEMPORARY_CALL_RETRIES = 3
"""Times a step sends a call again after a temporary error (5xx, 409, 429, timeout, reset)."""
RETRY_BACKOFF_SECONDS = 0.5
"""First pause before such a retry; it doubles each time (0.5, 1, 2 s)."""

_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
_IMAGE = re.compile(r"^[^\s@]+(@sha256:[a-f0-9]{64})?$")


# --------------------------------------------------------------------------- shared helpers


def _target(ctx: StepContext) -> KubernetesTarget:
    if not isinstance(ctx.target, KubernetesTarget):
        raise ActionFailed(f"this step needs a Kubernetes target, but {ctx.service}/{ctx.env} is {ctx.target.describe()}")
    return ctx.target


def _api(ctx: StepContext) -> ClusterApi:
    return ctx.backends.kubernetes.for_target(_target(ctx))


def _read(ctx: StepContext) -> dict[str, Any]:
    target = _target(ctx)
    return _api(ctx).read_deployment(target.namespace, target.deployment)


T = TypeVar("T")


def _retrying(ctx: StepContext, call: Callable[[], T]) -> T:
    """``call()``, sent again after a temporary error, as ``wait_rollout`` rides out a failed poll.

    Safe for every call a step makes: reads, and PATCHes that set absolute values (an image, a
    replica count, a template, a restart stamp fixed before the first try), so a second copy
    after a lost answer changes nothing more. A 503 while the API server restarts, or one reset
    connection, must not fail a deploy; a server that keeps failing still does, with its message.
    """
    for attempt in range(MAX_TEMPORARY_CALL_RETRIES):
        try:
            return call()
        except TemporaryActionError as exc:
            ctx.progress(f"{exc.user_message} (retrying)")
            ctx.wait(RETRY_BACKOFF_SECONDS * 2**attempt)
    return call()


def _spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else {}


def _status(obj: dict[str, Any]) -> dict[str, Any]:
    status = obj.get("status")
    return status if isinstance(status, dict) else {}


def _replicas(deployment: dict[str, Any]) -> str:
    value = _spec(deployment).get("replicas")
    return str(value) if value is not None else "?"


def _text(value: object) -> str | None:
    return str(value) if value is not None else None


def split_image(image: str) -> tuple[str, str | None, str | None]:
    """(repository, tag, digest) of an image reference.

    The tag is the part after the last ``:`` that follows the last ``/``, so a registry
    port (``host:5000/repo``) is never mistaken for a tag; a digest follows ``@``.
    """
    name, _, digest = image.partition("@")
    slash, colon = name.rfind("/"), name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1 :], digest or None
    return name, None, digest or None


def with_tag(image: str, tag: str) -> str:
    """``image`` with its tag (and any digest) replaced; a ``sha256:`` tag pins a digest.

    A digest is dropped when a tag is set: it pins the old content, so keeping it would
    make the new tag meaningless to the kubelet.
    """
    repository, _, _ = split_image(image)
    if _DIGEST.match(tag):
        return f"{repository}@{tag}"
    return f"{repository}:{tag}"


def choose_container(images: dict[str, str], wanted: str | None, what: str) -> str:
    """The container to change: the one asked for, else the only one, else a clear error."""
    names = ", ".join(images) or "none"
    if wanted is not None:
        if wanted not in images:
            raise ActionFailed(f"no container {wanted} in {what}; containers: {names}")
        return wanted
    if len(images) == 1:
        return next(iter(images))
    raise ActionFailed(
        f"{what} has several containers ({names}); say which with the step's container argument or the service's kubernetes.container"
    )


# --------------------------------------------------------------------------- set_image


class SetImageArgs(ActionArgs):
    tag: str | None = None
    image: str | None = None
    container: str | None = None

    @field_validator("tag")
    @classmethod
    def _valid_tag(cls, value: str | None) -> str | None:
        if value is not None and not (_TAG.match(value) or _DIGEST.match(value)):
            raise ValueError(f"{value!r} is not a valid image tag (letters, digits, _ . -; or sha256:<digest>)")
        return value

    @field_validator("image")
    @classmethod
    def _valid_image(cls, value: str | None) -> str | None:
        if value is not None and not _IMAGE.match(value):
            raise ValueError(f"{value!r} is not a valid image reference")
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> SetImageArgs:
        if (self.tag is None) == (self.image is None):
            raise ValueError("give exactly one of tag or image")
        return self


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

    def plan(self, ctx: StepContext, args: SetImageArgs) -> list[Change]:
        target = _target(ctx)
        deployment = _read(ctx)
        change = image_change(deployment, target, args)
        result = _api(ctx).patch_deployment(target.namespace, target.deployment, change.patch(), patch_type="strategic", dry_run=True)
        after = container_images(result).get(change.container, change.after)
        return [Change("image", change.before, after), Change("replicas", _replicas(deployment), _replicas(result))]

    def run(self, ctx: StepContext, args: SetImageArgs) -> StepResult:
        target = _target(ctx)
        change = image_change(_retrying(ctx, lambda: _read(ctx)), target, args)
        ctx.check()
        result = _retrying(
            ctx, lambda: _api(ctx).patch_deployment(target.namespace, target.deployment, change.patch(), patch_type="strategic")
        )
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
        self.target = _target(ctx)
        self.api = _api(ctx)
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
    return int(_status(deployment).get("observedGeneration") or 0) >= int(generation)


def _counts(deployment: dict[str, Any]) -> tuple[int, int, int]:
    status = _status(deployment)
    desired = _spec(deployment).get("replicas")
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

    def run(self, ctx: StepContext, args: WaitRolloutArgs) -> StepResult:
        return wait_for_rollout(ctx, args.poll_seconds)


# --------------------------------------------------------------------------- rollback


class RollbackArgs(ActionArgs):
    to_revision: int | None = Field(default=None, ge=0)


def plan_rollback(ctx: StepContext, to_revision: int | None) -> tuple[dict[str, Any], RollbackChoice]:
    """Read the Deployment and its ReplicaSets, and choose as ``kubectl rollout undo`` would."""
    target = _target(ctx)
    api = _api(ctx)
    deployment = api.read_deployment(target.namespace, target.deployment)
    selector = selector_string(_spec(deployment).get("selector"))
    replicasets = api.list_replicasets(target.namespace, selector)
    try:
        return deployment, choose_rollback(deployment, replicasets, to_revision)
    except RollbackRefused as exc:
        raise ActionFailed(f"cannot roll back {target.describe()}: {exc}") from exc


def perform_rollback(ctx: StepContext, to_revision: int | None) -> StepResult:
    """Roll back (or report that the template already matches) — shared by the action and restore."""
    target = _target(ctx)
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
    _retrying(ctx, lambda: _api(ctx).patch_deployment(target.namespace, target.deployment, choice.patch, patch_type="json"))
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

    def plan(self, ctx: StepContext, args: RollbackArgs) -> list[Change]:
        target = _target(ctx)
        deployment, choice = plan_rollback(ctx, args.to_revision)
        before_image = primary_image(deployment, target.container)
        current = _text(choice.current_revision)
        if choice.already_current:
            return [Change("revision", current, current), Change("image", before_image, before_image)]
        result = _api(ctx).patch_deployment(target.namespace, target.deployment, choice.patch, patch_type="json", dry_run=True)
        after_image = primary_image(result, target.container)
        return [Change("revision", current, str(choice.revision)), Change("image", before_image, after_image)]

    def run(self, ctx: StepContext, args: RollbackArgs) -> StepResult:
        return perform_rollback(ctx, args.to_revision)


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

    def plan(self, ctx: StepContext, args: ScaleArgs) -> list[Change]:
        target = _target(ctx)
        deployment = _read(ctx)
        scale = _api(ctx).patch_scale(target.namespace, target.deployment, args.replicas, dry_run=True)
        return [Change("replicas", _replicas(deployment), _text(_spec(scale).get("replicas")))]

    def run(self, ctx: StepContext, args: ScaleArgs) -> StepResult:
        target = _target(ctx)
        before = _replicas(_retrying(ctx, lambda: _read(ctx)))
        ctx.check()
        scale = _retrying(ctx, lambda: _api(ctx).patch_scale(target.namespace, target.deployment, args.replicas))
        after = _text(_spec(scale).get("replicas"))
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
    if _spec(deployment).get("paused"):
        raise ActionFailed(f"can't restart paused {what} (run rollout resume first)")


class Restart(Action[RestartArgs]):
    """``kubectl rollout restart``: set ``kubectl.kubernetes.io/restartedAt`` on the template."""

    name: ClassVar[str] = "kubernetes.restart"
    target_kind: ClassVar[TargetKind | None] = "kubernetes"
    args_model = RestartArgs
    mutating: ClassVar[bool] = True
    summary: ClassVar[str] = "Restart all pods of the Deployment with a rolling update."

    def plan(self, ctx: StepContext, args: RestartArgs) -> list[Change]:
        target = _target(ctx)
        deployment = _read(ctx)
        _refuse_paused(deployment, target.describe())
        result = _api(ctx).patch_deployment(
            target.namespace, target.deployment, restart_patch(datetime.now(UTC)), patch_type="strategic", dry_run=True
        )
        return [Change("pods", "running", f"restarted (rolling), replicas {_replicas(result)}")]

    def run(self, ctx: StepContext, args: RestartArgs) -> StepResult:
        target = _target(ctx)
        _refuse_paused(_retrying(ctx, lambda: _read(ctx)), target.describe())
        ctx.check()
        patch = restart_patch(datetime.now(UTC))
        result = _retrying(ctx, lambda: _api(ctx).patch_deployment(target.namespace, target.deployment, patch, patch_type="strategic"))
        stamp = patch["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT_ANNOTATION]
        return StepResult(
            summary=f"pods restarted (rolling), replicas {_replicas(result)} ({target.describe()})",
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
    status = _status(deployment)
    counts = (
        f"replicas: desired {_replicas(deployment)}, ready {status.get('readyReplicas') or 0}, "
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
        phase = _status(pod).get("phase") or "Unknown"
        lines.append(f"pod {name}: {pod_restarts(pod)} restarts ({phase})")
    return tuple(lines)


class Status(Action[StatusArgs]):
    """``kubectl get deployment`` + ``rollout status`` + pod restarts, in one message."""

    name: ClassVar[str] = "kubernetes.status"
    target_kind: ClassVar[TargetKind | None] = "kubernetes"
    args_model = StatusArgs
    mutating: ClassVar[bool] = False
    summary: ClassVar[str] = "Show the Deployment's replicas, image, revision, conditions and pod restarts."

    def run(self, ctx: StepContext, args: StatusArgs) -> StepResult:
        target = _target(ctx)
        deployment = _read(ctx)
        selector = selector_string(_spec(deployment).get("selector"))
        pods = _api(ctx).list_pods(target.namespace, selector) if selector else []
        status = _status(deployment)
        ready = status.get("readyReplicas") or 0
        image = primary_image(deployment, target.container)
        revision = revision_of(deployment)
        summary = (
            f"{ctx.service}/{ctx.env}: {ready}/{_replicas(deployment)} ready, image {image}, revision {revision}, {_phase(deployment)}"
        )
        data = {"ready": ready, "desired": _spec(deployment).get("replicas"), "image": image, "revision": revision}
        return StepResult(summary=summary, details=status_details(deployment, pods), data=data)


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
        deployment = _read(ctx)
        return {"revision": revision_of(deployment), "image": primary_image(deployment, _target(ctx).container)}

    def restore(self, ctx: StepContext, point: dict[str, Any]) -> StepResult:
        target = _target(ctx)
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


ACTIONS: list[type[Action[Any]]] = [SetImage, WaitRollout, Rollback, Scale, Restart, Status]
ROLLBACKS: list[RollbackSupport] = [KubernetesRollback()]
