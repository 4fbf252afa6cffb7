"""Pure parts of the gitops work: the drift guard's evidence, the one-token YAML edit, Argo CD and Flux decisions."""

from __future__ import annotations

import pytest

from bot.backends.gitops.argocd import sync_progress
from bot.backends.gitops.edits import EditError, set_image_tag
from bot.backends.gitops.flux import flux_progress
from bot.backends.kubernetes.drift_guard import drift_check, managing_controller
from bot.catalog.config import GitopsTarget, KubernetesTarget
from bot.errors import ActionFailed

TARGET = KubernetesTarget(namespace="shop", deployment="checkout")
SHA = "3f2a9c1" + "0" * 33


def deployment(annotations: dict[str, str] | None = None, labels: dict[str, str] | None = None) -> dict[str, object]:
    return {"metadata": {"name": "checkout", "annotations": annotations or {}, "labels": labels or {}}}


@pytest.mark.parametrize(
    ("obj", "owner"),
    [
        (deployment({"argocd.argoproj.io/tracking-id": "shop-checkout:apps/Deployment:shop/checkout"}), "Argo CD app shop-checkout"),
        (
            deployment(labels={"kustomize.toolkit.fluxcd.io/name": "apps", "kustomize.toolkit.fluxcd.io/namespace": "flux-system"}),
            "Flux Kustomization flux-system/apps",
        ),
        (deployment(labels={"helm.toolkit.fluxcd.io/name": "checkout"}), "Flux HelmRelease checkout"),
        (deployment(labels={"app.kubernetes.io/instance": "checkout"}), None),
        (deployment(), None),
    ],
)
def test_the_controller_that_owns_a_deployment_is_named_from_strong_evidence_only(obj: dict[str, object], owner: str | None) -> None:
    assert managing_controller(obj) == owner


def test_a_managed_deployment_is_refused_unless_the_target_allows_drift() -> None:
    obj = deployment({"argocd.argoproj.io/tracking-id": "shop-checkout:apps/Deployment:shop/checkout"})
    with pytest.raises(ActionFailed, match="checkout is managed by Argo CD app shop-checkout; deploy it through a gitops target"):
        drift_check(obj, TARGET, "checkout", "production")
    allowed = drift_check(obj, TARGET.model_copy(update={"allow_drift": True}), "checkout", "production")
    assert [change.render() for change in allowed] == [
        "drift managed by Argo CD app shop-checkout → changed outside git (allow_drift: the controller may revert it)"
    ]


def test_the_instance_label_alone_is_shown_never_refused() -> None:
    shown = drift_check(deployment(labels={"app.kubernetes.io/instance": "checkout"}), TARGET, "checkout", "production")
    assert [change.field for change in shown] == ["managed by"]


HELM = GitopsTarget(repo="/r", path="values.yaml", field="image.tag")


@pytest.mark.parametrize(
    ("line", "tag", "expected"),
    [
        ("  tag: 1.4.1 # pinned\n", "1.4.2", "  tag: 1.4.2 # pinned\n"),
        ("  tag: '1.4.1'\n", "1.4.2", "  tag: '1.4.2'\n"),
        ('  tag: "1.4.1"   # x\n', "1.5", '  tag: "1.5"   # x\n'),
        ("  tag: v1\n", "1.5", '  tag: "1.5"\n'),
        ("  tag: v1\n", "true", '  tag: "true"\n'),
    ],
)
def test_only_the_value_token_changes_and_numbers_stay_strings(line: str, tag: str, expected: str) -> None:
    text = "# values\nimage:\n  repository: r/checkout\n" + line + "other: 1\n"
    assert set_image_tag(text, HELM, tag) == "# values\nimage:\n  repository: r/checkout\n" + expected + "other: 1\n"


def test_a_missing_field_is_named() -> None:
    with pytest.raises(EditError, match=r"values\.yaml has no value at image\.tag"):
        set_image_tag("image:\n  repository: r\n", HELM, "1.0")


def test_argo_cd_progress_decisions() -> None:
    def app(sync: str, revision: str, health: str, phase: str = "Succeeded") -> dict[str, object]:
        return {
            "status": {"sync": {"status": sync, "revision": revision}, "health": {"status": health}, "operationState": {"phase": phase}}
        }

    assert sync_progress(app("OutOfSync", "old", "Healthy", "Running"), SHA).done is False
    assert sync_progress(app("Synced", SHA, "Progressing"), SHA).done is False
    assert sync_progress(app("Synced", SHA, "Healthy"), SHA).done is True
    assert sync_progress(app("Synced", SHA, "Degraded"), SHA).failed is True
    assert sync_progress(app("Synced", "old", "Degraded"), SHA).failed is False, "Degraded before our revision is not ours"
    assert sync_progress(app("OutOfSync", "old", "Healthy", "Error"), SHA).failed is True


def test_flux_progress_decisions() -> None:
    def obj(applied: str, attempted: str, status: str, reason: str) -> dict[str, object]:
        ready = {"type": "Ready", "status": status, "reason": reason, "message": "m"}
        return {"status": {"lastAppliedRevision": applied, "lastAttemptedRevision": attempted, "conditions": [ready]}}

    assert flux_progress(obj(f"main@sha1:{SHA}", f"main@sha1:{SHA}", "True", "ReconciliationSucceeded"), SHA).done is True
    assert flux_progress(obj("main@sha1:old", f"main@sha1:{SHA}", "Unknown", "Progressing"), SHA).done is False
    assert flux_progress(obj("main@sha1:old", f"main@sha1:{SHA}", "False", "HealthCheckFailed"), SHA).failed is True
    assert flux_progress(obj("main@sha1:old", "main@sha1:old", "False", "HealthCheckFailed"), SHA).failed is False
