"""Never fight a GitOps controller: refuse direct changes to objects Argo CD or Flux owns.

A direct image patch on such a Deployment is reverted by the controller's self-heal minutes
later, or silently diverges from git. Evidence, strongest first: Argo CD's tracking annotation
``argocd.argoproj.io/tracking-id`` (``app:group/Kind:namespace/name``, the default since 3.0);
Flux's ``kustomize.toolkit.fluxcd.io/name`` and ``helm.toolkit.fluxcd.io/name`` labels. The
``app.kubernetes.io/instance`` label is only weak evidence (Argo CD's older label tracking sets
it, but so do many Helm charts): it is shown in the plan, never a refusal.
"""

from __future__ import annotations

from typing import Any

from bot.catalog.actions import Change
from bot.catalog.config import KubernetesTarget
from bot.errors import ActionFailed

ARGO_TRACKING_ID = "argocd.argoproj.io/tracking-id"
INSTANCE_LABEL = "app.kubernetes.io/instance"
FLUX_OWNERS = (("kustomize.toolkit.fluxcd.io", "Kustomization"), ("helm.toolkit.fluxcd.io", "HelmRelease"))


def managing_controller(obj: dict[str, Any]) -> str | None:
    """``Argo CD app shop-checkout`` or ``Flux Kustomization flux-system/apps`` when strong evidence says so."""
    metadata = obj.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    labels = metadata.get("labels") or {}
    tracking = annotations.get(ARGO_TRACKING_ID)
    if tracking:
        return f"Argo CD app {str(tracking).split(':', 1)[0]}"
    for group, kind in FLUX_OWNERS:
        name = labels.get(f"{group}/name")
        if name:
            namespace = labels.get(f"{group}/namespace")
            return f"Flux {kind} {namespace}/{name}" if namespace else f"Flux {kind} {name}"
    return None


def drift_check(obj: dict[str, Any], target: KubernetesTarget, service: str, env: str) -> list[Change]:
    """Plan lines for the guard; raises when a controller owns ``obj`` and the target does not allow drift."""
    owner = managing_controller(obj)
    if owner is None:
        instance = ((obj.get("metadata") or {}).get("labels") or {}).get(INSTANCE_LABEL)
        if instance:
            note = f"label {INSTANCE_LABEL}={instance} (maybe an Argo CD app; not checked)"
            return [Change("managed by", note, note)]
        return []
    if not target.allow_drift:
        raise ActionFailed(
            f"{service} is managed by {owner}; deploy it through a gitops target. A direct change here would be "
            f"reverted or drift from git (set allow_drift: true on {service}/{env}'s kubernetes target for an emergency change)."
        )
    return [Change("drift", f"managed by {owner}", "changed outside git (allow_drift: the controller may revert it)")]
