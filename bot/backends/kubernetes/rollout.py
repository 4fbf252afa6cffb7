"""Pure rollout logic over plain Deployment/ReplicaSet/Pod dicts, mirroring kubectl.

Nothing here talks to a cluster: the actions fetch objects, convert them to the JSON
shape the API server sends (camelCase keys), and ask these functions what they mean.
Keeping the decisions pure lets ``tests/unit/test_kube_rollout.py`` replay kubectl's
own test tables, and keeps opsbot's idea of "rolled out" identical to
``kubectl rollout status`` and its idea of "previous revision" identical to
``kubectl rollout undo``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
"""deploymentutil.RevisionAnnotation: the revision of a Deployment and of each ReplicaSet."""

POD_TEMPLATE_HASH_LABEL = "pod-template-hash"
"""appsv1.DefaultDeploymentUniqueLabelKey: added to a ReplicaSet's template, never the Deployment's."""

TIMED_OUT_REASON = "ProgressDeadlineExceeded"
"""deploymentutil.TimedOutReason: the Progressing condition's reason once the deadline passed."""

RESTARTED_AT_ANNOTATION = "kubectl.kubernetes.io/restartedAt"
"""The pod template annotation ``kubectl rollout restart`` sets (objectrestarter.go)."""

ANNOTATIONS_TO_SKIP = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION_ANNOTATION,
        "deployment.kubernetes.io/revision-history",
        "deployment.kubernetes.io/desired-replicas",
        "deployment.kubernetes.io/max-replicas",
        "deprecated.deployment.rollback.to",
    }
)
"""rollback.go ``annotationsToSkip``: kept from the Deployment, never copied from the ReplicaSet."""

Obj = Mapping[str, Any]


# --------------------------------------------------------------------------- status


@dataclass(frozen=True)
class RolloutStatus:
    """What ``kubectl rollout status`` would print, without the trailing newline.

    ``failed`` is kubectl's error case (the progress deadline was exceeded); ``message``
    then carries the Progressing condition's own message, which names the ReplicaSet.
    """

    done: bool
    failed: bool
    message: str


def rollout_status(deployment: Obj, pods: list[dict[str, Any]] | None = None) -> RolloutStatus:
    """Decide whether a Deployment's rollout is done, in progress or failed.

    Mirrors ``DeploymentStatusViewer.Status`` in
    staging/src/k8s.io/kubectl/pkg/polymorphichelpers/rollout_status.go, check for check
    and message for message (Go zero values stand in for missing fields). When ``pods``
    (the Deployment's pods) are given, a waiting message gets kubectl's ``appendWarning``
    suffix (Unschedulable, ImagePullBackOff, CrashLoopBackOff, ...).
    """
    name = _name(deployment)
    if _int(deployment, "metadata", "generation") > _int(deployment, "status", "observedGeneration"):
        return _waiting("Waiting for deployment spec update to be observed...", pods)
    condition = find_condition(deployment, "Progressing")
    if condition is not None and condition.get("reason") == TIMED_OUT_REASON:
        message = str(condition.get("message") or f"deployment {_quote(name)} exceeded its progress deadline")
        return RolloutStatus(done=False, failed=True, message=message.rstrip("."))
    spec_replicas = _get(deployment, "spec", "replicas")
    updated = _int(deployment, "status", "updatedReplicas")
    replicas = _int(deployment, "status", "replicas")
    available = _int(deployment, "status", "availableReplicas")
    prefix = f"Waiting for deployment {_quote(name)} rollout to finish"
    if spec_replicas is not None and updated < int(spec_replicas):
        return _waiting(f"{prefix}: {updated} out of {spec_replicas} new replicas have been updated...", pods)
    if replicas > updated:
        return _waiting(f"{prefix}: {replicas - updated} old replicas are pending termination...", pods)
    if available < updated:
        return _waiting(f"{prefix}: {available} of {updated} updated replicas are available...", pods)
    return RolloutStatus(done=True, failed=False, message=f"deployment {_quote(name)} successfully rolled out")


def _waiting(message: str, pods: list[dict[str, Any]] | None) -> RolloutStatus:
    warning = pod_warning(pods or [])
    if warning:
        message = f"{message} (Warning: {warning})"
    return RolloutStatus(done=False, failed=False, message=message)


_WAITING_WARNINGS = frozenset(
    {"ImagePullBackOff", "ErrImagePull", "CrashLoopBackOff", "CreateContainerConfigError", "CreateContainerError"}
)


def pod_warning(pods: list[dict[str, Any]]) -> str | None:
    """The first pod problem worth showing next to a waiting rollout.

    Mirrors ``appendWarning`` in rollout_status.go: an Unschedulable PodScheduled
    condition, or a container waiting with a pull/crash/config error.
    """
    for pod in pods:
        for condition in _get(pod, "status", "conditions") or []:
            if (
                condition.get("type") == "PodScheduled"
                and condition.get("status") == "False"
                and condition.get("reason") == "Unschedulable"
            ):
                return str(condition.get("message") or "Unschedulable")
        for status in _get(pod, "status", "containerStatuses") or []:
            waiting = (status.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in _WAITING_WARNINGS:
                return f"{waiting['reason']} - {waiting.get('message') or ''}".rstrip(" -")
    return None


def find_condition(deployment: Obj, condition_type: str) -> dict[str, Any] | None:
    """deploymentutil.GetDeploymentCondition: the status condition of that type, if any."""
    for condition in _get(deployment, "status", "conditions") or []:
        if condition.get("type") == condition_type:
            return dict(condition)
    return None


def revision_of(obj: Obj) -> int | None:
    """deploymentutil.Revision: the revision annotation as an int (None if absent or bad)."""
    raw = (_get(obj, "metadata", "annotations") or {}).get(REVISION_ANNOTATION)
    try:
        return int(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------- rollback


class RollbackRefused(ValueError):
    """``kubectl rollout undo`` would refuse; the message says why in kubectl's words."""


@dataclass(frozen=True)
class RollbackChoice:
    """The ReplicaSet to return to and the JSON patch that does it.

    ``already_current`` mirrors kubectl's "skipped rollback (current template already
    matches revision N)": the caller reports it and sends nothing.
    """

    revision: int
    current_revision: int | None
    replicaset: str
    template: dict[str, Any]
    annotations: dict[str, str]
    already_current: bool
    patch: list[dict[str, Any]] = field(default_factory=list)


def choose_rollback(deployment: Obj, replicasets: list[dict[str, Any]], to_revision: int | None) -> RollbackChoice:
    """Pick the ReplicaSet ``kubectl rollout undo [--to-revision=N]`` would restore.

    Mirrors ``DeploymentRollbacker.Rollback`` and ``deploymentRevision`` in
    staging/src/k8s.io/kubectl/pkg/polymorphichelpers/rollback.go, in kubectl's order:
    find the revision (explicit, or the highest below the current one), refuse a paused
    Deployment, skip if the template already matches, then build the patch. ``None`` and
    ``0`` both mean "previous", as ``--to-revision=0`` does.
    """
    if to_revision is not None and to_revision < 0:
        raise RollbackRefused(f"unable to find specified revision {to_revision} in history")
    owned = controlled_replicasets(deployment, replicasets)
    by_revision = {revision: rs for rs in owned if (revision := revision_of(rs)) is not None}
    current = revision_of(deployment)
    if current is None and by_revision:
        current = max(by_revision)
    target = _target_revision(_name(deployment), by_revision, current, to_revision)
    replicaset = by_revision[target]
    if _get(deployment, "spec", "paused"):
        raise RollbackRefused(
            "you cannot rollback a paused deployment; resume it first with "
            f"'kubectl rollout resume deployment/{_name(deployment)}' and try again"
        )
    template = template_without_hash(_get(replicaset, "spec", "template") or {})
    current_template = _get(deployment, "spec", "template") or {}
    annotations = rollback_annotations(deployment, replicaset)
    already = templates_equal(template, current_template)
    return RollbackChoice(
        revision=target,
        current_revision=current,
        replicaset=_name(replicaset),
        template=template,
        annotations=annotations,
        already_current=already,
        patch=[] if already else rollback_patch(deployment, template, annotations),
    )


def _target_revision(name: str, by_revision: Mapping[int, Obj], current: int | None, to_revision: int | None) -> int:
    if to_revision:
        if to_revision not in by_revision:
            available = ", ".join(str(revision) for revision in sorted(by_revision)) or "none"
            raise RollbackRefused(f"revision {to_revision} not found; available: {available}")
        return to_revision
    below = [revision for revision in by_revision if current is None or revision < current]
    if not below:
        raise RollbackRefused(f"no rollout history found for deployment {_quote(name)}")
    return max(below)


def controlled_replicasets(deployment: Obj, replicasets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ReplicaSets whose controller ownerReference is this Deployment's uid.

    Mirrors ``deploymentutil.GetAllReplicaSets`` → ``metav1.IsControlledBy``: a selector
    match alone is not ownership (another Deployment may share labels).
    """
    uid = _get(deployment, "metadata", "uid")
    return [rs for rs in replicasets if uid is not None and _controller_uid(rs) == uid]


def _controller_uid(obj: Obj) -> str | None:
    for reference in _get(obj, "metadata", "ownerReferences") or []:
        if reference.get("controller"):
            uid = reference.get("uid")
            return str(uid) if uid is not None else None
    return None


def template_without_hash(template: Obj) -> dict[str, Any]:
    """A deep copy of a pod template without the ``pod-template-hash`` label.

    rollback.go deletes this label before patching the template back, because the
    Deployment's own template never carries it.
    """
    cleaned = copy.deepcopy(dict(template))
    labels = (cleaned.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(POD_TEMPLATE_HASH_LABEL, None)
    return cleaned


def templates_equal(first: Obj, second: Obj) -> bool:
    """rollback.go ``equalIgnoreHash``: equal once the hash label is gone.

    ``apiequality.Semantic.DeepEqual`` treats nil and empty maps/slices alike, and the
    JSON form drops nil fields inconsistently (``creationTimestamp: null``), so both
    sides are normalised by dropping None and empty containers before comparing.
    """
    return bool(_normalised(template_without_hash(first)) == _normalised(template_without_hash(second)))


def _normalised(value: Any) -> Any:
    if isinstance(value, Mapping):
        items = {key: _normalised(item) for key, item in value.items()}
        return {key: item for key, item in items.items() if item not in (None, {}, [])}
    if isinstance(value, list):
        return [_normalised(item) for item in value]
    return value


def rollback_annotations(deployment: Obj, replicaset: Obj) -> dict[str, str]:
    """The Deployment's annotations after the undo, as rollback.go computes them.

    Skipped annotations (revision, last-applied, ...) keep the Deployment's values;
    every other annotation comes from the ReplicaSet (e.g. ``kubernetes.io/change-cause``).
    """
    current = _get(deployment, "metadata", "annotations") or {}
    annotations = {key: str(value) for key, value in current.items() if key in ANNOTATIONS_TO_SKIP}
    for key, value in (_get(replicaset, "metadata", "annotations") or {}).items():
        if key not in ANNOTATIONS_TO_SKIP:
            annotations[key] = str(value)
    return annotations


def rollback_patch(deployment: Obj, template: Obj, annotations: Mapping[str, str]) -> list[dict[str, Any]]:
    """rollback.go ``getDeploymentPatch``: a JSON patch replacing template and annotations.

    A JSON patch (not a strategic merge) because an undo must *replace* the template:
    a merge would keep containers, env vars or volumes added since that revision.
    JSON patch ``replace`` needs the path to exist, so a Deployment without annotations
    gets ``add`` instead.
    """
    has_annotations = _get(deployment, "metadata", "annotations") is not None
    return [
        {"op": "replace", "path": "/spec/template", "value": dict(template)},
        {"op": "replace" if has_annotations else "add", "path": "/metadata/annotations", "value": dict(annotations)},
    ]


# --------------------------------------------------------------------------- selectors


def selector_matches(selector: Obj | None, labels: Mapping[str, str] | None) -> bool:
    """Whether a ``LabelSelector`` selects these labels (``metav1.LabelSelectorAsSelector``).

    An empty selector matches everything and a missing one nothing, as in apimachinery.
    Used to join pods to Deployments in memory after one list call per namespace.
    """
    if selector is None:
        return False
    labels = labels or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    return all(_expression_matches(expression, labels) for expression in selector.get("matchExpressions") or [])


def _expression_matches(expression: Obj, labels: Mapping[str, str]) -> bool:
    key = expression.get("key", "")
    operator = expression.get("operator")
    values = expression.get("values") or []
    if operator == "In":
        return key in labels and labels[key] in values
    if operator == "NotIn":
        return key not in labels or labels[key] not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    return False


def selector_string(selector: Obj | None) -> str:
    """The ``labelSelector`` query string for a ``LabelSelector`` (``selector.String()``)."""
    if not selector:
        return ""
    parts = [f"{key}={value}" for key, value in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        parts.append(_expression_string(expression))
    return ",".join(parts)


def _expression_string(expression: Obj) -> str:
    key = str(expression.get("key", ""))
    values = ",".join(sorted(expression.get("values") or []))
    operator = expression.get("operator")
    if operator == "In":
        return f"{key} in ({values})"
    if operator == "NotIn":
        return f"{key} notin ({values})"
    if operator == "DoesNotExist":
        return f"!{key}"
    return key


# --------------------------------------------------------------------------- helpers


def _get(obj: Obj, *path: str) -> Any:
    value: Any = obj
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _int(obj: Obj, *path: str) -> int:
    value = _get(obj, *path)
    return int(value) if value is not None else 0


def _name(obj: Obj) -> str:
    return str(_get(obj, "metadata", "name") or "")


def _quote(text: str) -> str:
    """Go's ``%q`` for the plain names Kubernetes allows."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
