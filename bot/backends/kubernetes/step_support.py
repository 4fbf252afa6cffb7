"""What every Kubernetes step shares: its target, its cluster's API, retries, and small readers of Deployment dicts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from bot.backends.kubernetes.client import ClusterApi
from bot.catalog.actions import (
    StepContext,
)
from bot.catalog.config import KubernetesTarget
from bot.errors import ActionFailed, TemporaryActionError

MAX_TEMPORARY_POLL_ERRORS = 3
"""Consecutive temporary API errors ``wait_rollout`` rides out before giving up."""
MAX_TEMPORARY_CALL_RETRIES = 3
"""Times a step sends a call again after a temporary error (5xx, 409, 429, timeout, reset)."""
RETRY_BACKOFF_SECONDS = 0.5
"""First pause before such a retry; it doubles each time (0.5, 1, 2 s)."""


# --------------------------------------------------------------------------- shared helpers


def step_target(ctx: StepContext) -> KubernetesTarget:
    if not isinstance(ctx.target, KubernetesTarget):
        raise ActionFailed(f"this step needs a Kubernetes target, but {ctx.service}/{ctx.env} is {ctx.target.describe()}")
    return ctx.target


def cluster_api(ctx: StepContext) -> ClusterApi:
    """The target's cluster, called as the requester when the target impersonates (every call of a request)."""
    return ctx.backends.kubernetes.for_target(step_target(ctx), ctx.identity, ctx.request_id or None)


def read_deployment(ctx: StepContext) -> dict[str, Any]:
    target = step_target(ctx)
    return cluster_api(ctx).read_deployment(target.namespace, target.deployment)


def read_deployment_for_plan(ctx: StepContext) -> dict[str, Any]:
    """Read the Deployment for a plan, and keep the read for the run (``StepContext.plan_reads``).

    The run's plan check reads the Deployment just before the rollback point and the first change
    need it: they take this read (``planned_deployment``) instead of two more round trips.
    """
    deployment = read_deployment(ctx)
    ctx.plan_reads[_plan_read_key(step_target(ctx))] = deployment
    return deployment


def planned_deployment(ctx: StepContext) -> dict[str, Any] | None:
    """The plan check's read of the Deployment, if nothing has changed the target since (the engine forgets it then)."""
    found = ctx.plan_reads.get(_plan_read_key(step_target(ctx)))
    return found if isinstance(found, dict) else None


def resource_version_of(obj: dict[str, Any]) -> str | None:
    version = (obj.get("metadata") or {}).get("resourceVersion")
    return str(version) if version else None


def _plan_read_key(target: KubernetesTarget) -> str:
    cluster = target.eks.describe() if target.eks is not None else target.context
    return f"kubernetes:{cluster}/{target.namespace}/deployments/{target.deployment}"


T = TypeVar("T")


def retrying(ctx: StepContext, call: Callable[[], T]) -> T:
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


def spec_of(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else {}


def status_of(obj: dict[str, Any]) -> dict[str, Any]:
    status = obj.get("status")
    return status if isinstance(status, dict) else {}


def replicas_text(deployment: dict[str, Any]) -> str:
    value = spec_of(deployment).get("replicas")
    return str(value) if value is not None else "?"


def text_or_none(value: object) -> str | None:
    return str(value) if value is not None else None


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
