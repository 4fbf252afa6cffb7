"""Bulk health of many Deployments: one list per resource per namespace, joined in memory.

The digest and the incident watch ask about every service every minute. Asking per
service would cost two requests per Deployment and hammer the API server of a big
cluster, so targets are grouped by (context, namespace): exactly one list-deployments and
one list-pods call per group, then pods are matched to Deployments by label selector, as
``kubectl rollout status`` finds a Deployment's pods (rollout_status.go ``appendWarning``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bot.backends.kubernetes.client import ClusterApi, cluster_name
from bot.backends.kubernetes.rollout import (
    TIMED_OUT_REASON,
    RolloutStatus,
    find_condition,
    revision_of,
    rollout_status,
    selector_matches,
)
from bot.catalog.config import KubernetesTarget
from bot.errors import ActionFailed
from bot.service_health import HealthState, ServiceHealth, TargetRef

CRASH_LOOP_REASON = "CrashLoopBackOff"

HealthItem = tuple[TargetRef, KubernetesTarget]
GroupKey = tuple[str | None, str]


def collect_health(cluster_for: Callable[[str | None], ClusterApi], items: list[HealthItem]) -> list[ServiceHealth]:
    """Health for every item, in the order given; a failing namespace makes its items ``unknown``.

    One unreachable cluster must not blank the whole digest, so list failures are caught
    here (they are already opsbot errors with a message) and reported per service.
    """
    results: dict[int, ServiceHealth] = {}
    for (context, namespace), indexes in _group(items).items():
        try:
            api = cluster_for(context)
            deployments = api.list_deployments(namespace)
            pods = api.list_pods(namespace)
        except ActionFailed as exc:
            for index in indexes:
                results[index] = unknown_health(*items[index], reason=exc.user_message)
            continue
        by_name = {_name(deployment): deployment for deployment in deployments}
        pods_by_label = PodIndex(pods)
        for index in indexes:
            ref, target = items[index]
            deployment = by_name.get(target.deployment)
            if deployment is None:
                reason = f"no deployment {target.deployment} in namespace {namespace} of cluster {cluster_name(context)}"
                results[index] = unknown_health(ref, target, reason=reason)
            else:
                results[index] = deployment_health(ref, target, deployment, pods_by_label.matching(deployment))
    return [results[index] for index in range(len(items))]


def _group(items: list[HealthItem]) -> dict[GroupKey, list[int]]:
    groups: dict[GroupKey, list[int]] = {}
    for index, (_ref, target) in enumerate(items):
        groups.setdefault((target.cluster_key, target.namespace), []).append(index)
    return groups


def unknown_health(ref: TargetRef, target: KubernetesTarget, *, reason: str) -> ServiceHealth:
    """A service opsbot could not see: missing Deployment, forbidden list, cluster down."""
    return ServiceHealth(service=ref.service, env=ref.env, target=target.describe(), state="unknown", reasons=(reason,))


class PodIndex:
    """A namespace's pods indexed by label, so each Deployment finds its pods without scanning them all.

    Deployments select with ``matchLabels`` almost always: the candidates are the pods that carry
    the rarest of those labels, then the full selector (``matchExpressions`` included) decides.
    Scanning every pod for every Deployment was quadratic in the namespace's size.
    """

    def __init__(self, pods: list[dict[str, Any]]) -> None:
        self._pods = pods
        self._by_label: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for pod in pods:
            for key, value in _labels(pod).items():
                self._by_label.setdefault((key, value), []).append(pod)

    def matching(self, deployment: Mapping[str, Any]) -> list[dict[str, Any]]:
        selector = (deployment.get("spec") or {}).get("selector")
        match_labels = (selector or {}).get("matchLabels") if isinstance(selector, dict) else None
        candidates = self._pods
        if isinstance(match_labels, dict) and match_labels:
            lists = [self._by_label.get((str(key), str(value)), []) for key, value in match_labels.items()]
            candidates = min(lists, key=len)
        return [pod for pod in candidates if selector_matches(selector, _labels(pod))]


def deployment_health(ref: TargetRef, target: KubernetesTarget, deployment: Mapping[str, Any], pods: list[dict[str, Any]]) -> ServiceHealth:
    """Judge one Deployment with its own pods (see ``health_state`` for the rules)."""
    status = deployment.get("status") or {}
    reasons = tuple(_reasons(deployment, pods))
    revision = revision_of(deployment)
    rollout = rollout_status(deployment)  # once: the state and the details both read it
    return ServiceHealth(
        service=ref.service,
        env=ref.env,
        target=target.describe(),
        state=health_state(deployment, pods, rollout=rollout),
        desired=_optional_int((deployment.get("spec") or {}).get("replicas")),
        ready=int(status.get("readyReplicas") or 0),
        updated=int(status.get("updatedReplicas") or 0),
        available=int(status.get("availableReplicas") or 0),
        version=primary_image(deployment, target.container),
        revision=str(revision) if revision is not None else None,
        restarts=sum(pod_restarts(pod) for pod in pods),
        reasons=reasons,
        details={"rollout": rollout.message},
    )


def health_state(deployment: Mapping[str, Any], pods: list[dict[str, Any]], *, rollout: RolloutStatus | None = None) -> HealthState:
    """failed > degraded (crash loops) > progressing > degraded (short of desired) > healthy.

    A rollout past its progress deadline is ``failed`` (kubectl treats it as an error);
    crash-looping pods are ``degraded`` even mid-rollout, since waiting will not fix them;
    an unfinished rollout is ``progressing``; a finished one short of the desired
    available replicas is ``degraded``. ``rollout``: the Deployment's ``rollout_status``, when
    the caller has it already (a digest judges thousands of Deployments).
    """
    status = rollout if rollout is not None else rollout_status(deployment)
    if status.failed:
        return "failed"
    if crash_looping(pods):
        return "degraded"
    if not status.done:
        return "progressing"
    desired = _optional_int((deployment.get("spec") or {}).get("replicas"))
    available = int((deployment.get("status") or {}).get("availableReplicas") or 0)
    if desired is not None and available < desired:
        return "degraded"
    return "healthy"


def _reasons(deployment: Mapping[str, Any], pods: list[dict[str, Any]]) -> list[str]:
    reasons: list[str] = []
    condition = find_condition(deployment, "Progressing")
    if condition is not None and condition.get("reason") == TIMED_OUT_REASON:
        reasons.append(f"{TIMED_OUT_REASON}: {condition.get('message') or 'progress deadline exceeded'}")
    for pod_name, container in crash_looping(pods):
        reasons.append(f"pod {pod_name} is in {CRASH_LOOP_REASON} (container {container})")
    desired = _optional_int((deployment.get("spec") or {}).get("replicas"))
    available = int((deployment.get("status") or {}).get("availableReplicas") or 0)
    if desired is not None and available < desired:
        reasons.append(f"{available}/{desired} replicas available")
    return reasons


def crash_looping(pods: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(pod, container) pairs whose container is waiting in ``CrashLoopBackOff``."""
    found: list[tuple[str, str]] = []
    for pod in pods:
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            waiting = (status.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") == CRASH_LOOP_REASON:
                found.append((_name(pod), str(status.get("name") or "?")))
    return found


def pod_restarts(pod: Mapping[str, Any]) -> int:
    """Sum of ``restartCount`` over the pod's containerStatuses."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return sum(int(status.get("restartCount") or 0) for status in statuses)


def container_images(deployment: Mapping[str, Any]) -> dict[str, str]:
    """Container name → image of the Deployment's pod template, in template order."""
    spec = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
    return {str(c.get("name")): str(c.get("image") or "") for c in spec.get("containers") or []}


def primary_image(deployment: Mapping[str, Any], container: str | None) -> str | None:
    """The image to show as "the version": the named container's, else the only one's.

    With several containers and none named, all are shown (``web=a:1, sidecar=b:2``)
    rather than guessing which one is the application.
    """
    images = container_images(deployment)
    if container is not None and container in images:
        return images[container]
    if len(images) == 1:
        return next(iter(images.values()))
    if not images:
        return None
    return ", ".join(f"{name}={image}" for name, image in images.items())


def _labels(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _optional_int(value: Any) -> int | None:
    return int(value) if value is not None else None
