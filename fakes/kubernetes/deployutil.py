"""Deployment arithmetic shared by the registry strategy and the controller.

These are the small rules from ``pkg/controller/deployment/util`` that decide
a rollout's shape: surge/unavailable budgets from int-or-percent values,
revision annotations, template identity (ignoring ``pod-template-hash``), the
``Progressing``/``Available`` condition bookkeeping and the completeness,
progress and timeout predicates that ``kubectl rollout status`` reads back.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from fakes.kubernetes.json_values import JsonObject, canonical, canonical_json, dig, json_equal
from fakes.kubernetes.object_store import format_time, parse_time

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
ROLLBACK_TO = "deprecated.deployment.rollback.to"
HASH_LABEL = "pod-template-hash"
ANNOTATIONS_NOT_COPIED = frozenset({LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS, ROLLBACK_TO})

# Condition reasons, spelled as the deployment controller spells them.
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
MIN_AVAILABLE = "MinimumReplicasAvailable"
MIN_UNAVAILABLE = "MinimumReplicasUnavailable"

_PERCENT_RE = re.compile(r"^[0-9]+%$")
_HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


# -- int-or-percent -----------------------------------------------------------


def is_valid_int_or_percent(value: Any) -> bool:
    """Whether ``value`` is a non-bool int or a ``"NN%"`` string."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, str) and bool(_PERCENT_RE.match(value)))


def scaled_value(value: Any, total: int, *, round_up: bool) -> int:
    """Resolve an int-or-percent against ``total`` (``GetScaledValueFromIntOrPercent``)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _PERCENT_RE.match(value):
        exact = int(value[:-1]) * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return 0


def replicas_of(obj: JsonObject) -> int:
    """``spec.replicas`` with the API default of 1."""
    value = dig(obj, "spec", "replicas")
    return int(value) if isinstance(value, int) else 1


def is_rolling(deployment: JsonObject) -> bool:
    """Whether the strategy is RollingUpdate (the default)."""
    return dig(deployment, "spec", "strategy", "type") in (None, "RollingUpdate")


def fenceposts(deployment: JsonObject) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) in pods; both zero is corrected to 0/1."""
    desired = replicas_of(deployment)
    rolling = dig(deployment, "spec", "strategy", "rollingUpdate") or {}
    surge = scaled_value(rolling.get("maxSurge", "25%"), desired, round_up=True)
    unavailable = scaled_value(rolling.get("maxUnavailable", "25%"), desired, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_surge(deployment: JsonObject) -> int:
    """How many pods above ``spec.replicas`` a rollout may run."""
    return fenceposts(deployment)[0] if is_rolling(deployment) else 0


def max_unavailable(deployment: JsonObject) -> int:
    """How many pods below ``spec.replicas`` a rollout may tolerate."""
    desired = replicas_of(deployment)
    if not is_rolling(deployment) or desired == 0:
        return 0
    return min(fenceposts(deployment)[1], desired)


# -- revisions and templates -------------------------------------------------


def revision(obj: JsonObject) -> int:
    """The ``deployment.kubernetes.io/revision`` annotation as a number (0 if unset)."""
    raw = dig(obj, "metadata", "annotations", REVISION)
    try:
        return int(raw) if raw is not None else 0
    except (TypeError, ValueError):
        return 0


def max_revision(replicasets: Iterable[JsonObject]) -> int:
    """Highest revision among ``replicasets``."""
    return max((revision(rs) for rs in replicasets), default=0)


def template_without_hash(template: Any) -> Any:
    """A pod template with the ``pod-template-hash`` label removed."""
    if not isinstance(template, dict):
        return template
    copy_ = dict(template)
    metadata = dict(copy_.get("metadata") or {})
    labels = {k: v for k, v in (metadata.get("labels") or {}).items() if k != HASH_LABEL}
    metadata["labels"] = labels
    copy_["metadata"] = metadata
    return copy_


def templates_equal(left: Any, right: Any) -> bool:
    """``EqualIgnoreHash``: same template apart from the hash label."""
    return json_equal(canonical(template_without_hash(left)), canonical(template_without_hash(right)))


def pod_template_hash(template: JsonObject, collision_count: int = 0) -> str:
    """A stable short hash of a template, shaped like ``controller.ComputeHash``.

    The value differs from a real cluster's (Go hashes its own struct dump),
    but it has the same properties: FNV-32a, safe-encoded, deterministic, and
    changed by ``collisionCount``.
    """
    data = canonical_json(template_without_hash(template)).encode()
    if collision_count:
        data += str(collision_count).encode()
    value = 0x811C9DC5
    for byte in data:
        value ^= byte
        value = (value * 0x01000193) & 0xFFFFFFFF
    return "".join(_HASH_ALPHABET[ord(ch) % len(_HASH_ALPHABET)] for ch in str(value))


def owned_by(obj: JsonObject, owner_uid: str) -> bool:
    """Whether ``obj`` names ``owner_uid`` as its controller owner."""
    refs = dig(obj, "metadata", "ownerReferences") or []
    return any(ref.get("uid") == owner_uid and bool(ref.get("controller")) for ref in refs)


def controller_ref(owner: JsonObject) -> JsonObject:
    """An ownerReference with ``controller: true`` pointing at ``owner``."""
    meta = owner["metadata"]
    return {
        "apiVersion": owner.get("apiVersion", "apps/v1"),
        "kind": owner.get("kind", ""),
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def active(replicasets: Iterable[JsonObject]) -> list[JsonObject]:
    """ReplicaSets with a non-zero desired size."""
    return [rs for rs in replicasets if replicas_of(rs) > 0]


def spec_total(replicasets: Iterable[JsonObject | None]) -> int:
    """Sum of ``spec.replicas``."""
    return sum(replicas_of(rs) for rs in replicasets if rs is not None)


def status_total(replicasets: Iterable[JsonObject | None], field: str) -> int:
    """Sum of a ``status`` counter."""
    return sum(int(dig(rs, "status", field) or 0) for rs in replicasets if rs is not None)


# -- conditions ----------------------------------------------------------------


def new_condition(kind: str, status: str, reason: str, message: str, now: datetime) -> JsonObject:
    """A fresh DeploymentCondition stamped with ``now``."""
    stamp = format_time(now)
    return {
        "type": kind,
        "status": status,
        "lastUpdateTime": stamp,
        "lastTransitionTime": stamp,
        "reason": reason,
        "message": message,
    }


def get_condition(status: JsonObject, kind: str) -> JsonObject | None:
    """The condition of ``kind`` in ``status``, if any."""
    for condition in status.get("conditions") or []:
        if condition.get("type") == kind:
            return dict(condition)
    return None


def set_condition(status: JsonObject, condition: JsonObject) -> None:
    """``SetDeploymentCondition``: no-op on same status+reason, keep transition time.

    The replaced condition moves to the end of the list, as in Go.
    """
    current = get_condition(status, condition["type"])
    if current and current["status"] == condition["status"] and current.get("reason") == condition["reason"]:
        return
    if current and current["status"] == condition["status"]:
        condition["lastTransitionTime"] = current["lastTransitionTime"]
    remove_condition(status, condition["type"])
    status["conditions"] = [*(status.get("conditions") or []), condition]


def remove_condition(status: JsonObject, kind: str) -> None:
    """Drop the condition of ``kind``."""
    kept = [c for c in status.get("conditions") or [] if c.get("type") != kind]
    if kept:
        status["conditions"] = kept
    else:
        status.pop("conditions", None)


def has_progress_deadline(deployment: JsonObject) -> bool:
    """Whether ``progressDeadlineSeconds`` is set (and not MaxInt32)."""
    deadline = dig(deployment, "spec", "progressDeadlineSeconds")
    return isinstance(deadline, int) and deadline != 2**31 - 1


def is_complete(deployment: JsonObject, status: JsonObject) -> bool:
    """``DeploymentComplete``: every replica updated, available, and observed."""
    desired = replicas_of(deployment)
    return (
        int(status.get("updatedReplicas", 0)) == desired
        and int(status.get("replicas", 0)) == desired
        and int(status.get("availableReplicas", 0)) == desired
        and int(status.get("observedGeneration", 0)) >= int(dig(deployment, "metadata", "generation") or 0)
    )


def is_progressing(deployment: JsonObject, new_status: JsonObject) -> bool:
    """``DeploymentProgressing``: any counter moved the right way since last sync."""
    old = deployment.get("status") or {}

    def count(status: JsonObject, name: str) -> int:
        return int(status.get(name, 0))

    old_old = count(old, "replicas") - count(old, "updatedReplicas")
    new_old = count(new_status, "replicas") - count(new_status, "updatedReplicas")
    return (
        count(new_status, "updatedReplicas") > count(old, "updatedReplicas")
        or new_old < old_old
        or count(new_status, "readyReplicas") > count(old, "readyReplicas")
        or count(new_status, "availableReplicas") > count(old, "availableReplicas")
    )


def is_timed_out(deployment: JsonObject, new_status: JsonObject, now: datetime) -> bool:
    """``DeploymentTimedOut``: no progress since ``lastUpdateTime`` + deadline."""
    if not has_progress_deadline(deployment):
        return False
    condition = get_condition(new_status, "Progressing")
    if condition is None or condition.get("reason") == NEW_RS_AVAILABLE:
        return False
    if condition.get("reason") == TIMED_OUT:
        return True
    deadline = timedelta(seconds=int(dig(deployment, "spec", "progressDeadlineSeconds")))
    return parse_time(str(condition["lastUpdateTime"])) + deadline < now


def calculate_status(deployment: JsonObject, all_rs: Sequence[JsonObject], new_rs: JsonObject | None, now: datetime) -> JsonObject:
    """``calculateStatus``: counters from the ReplicaSets plus ``Available``.

    Zero counters are left out, as Go's ``omitempty`` does on the wire, so a
    client sees ``readyReplicas`` missing (``None``) rather than ``0``.
    """
    available = status_total(all_rs, "availableReplicas")
    total = spec_total(all_rs)
    counters = {
        "observedGeneration": int(dig(deployment, "metadata", "generation") or 0),
        "replicas": status_total(all_rs, "replicas"),
        "updatedReplicas": status_total([new_rs], "replicas"),
        "readyReplicas": status_total(all_rs, "readyReplicas"),
        "availableReplicas": available,
        "unavailableReplicas": max(total - available, 0),
    }
    status: JsonObject = {k: v for k, v in counters.items() if v}
    old = deployment.get("status") or {}
    if old.get("collisionCount"):
        status["collisionCount"] = old["collisionCount"]
    if old.get("conditions"):
        status["conditions"] = [dict(c) for c in old["conditions"]]
    if available >= replicas_of(deployment) - max_unavailable(deployment):
        condition = new_condition("Available", "True", MIN_AVAILABLE, "Deployment has minimum availability.", now)
    else:
        condition = new_condition("Available", "False", MIN_UNAVAILABLE, "Deployment does not have minimum availability.", now)
    set_condition(status, condition)
    return status
