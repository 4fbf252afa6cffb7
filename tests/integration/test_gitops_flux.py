"""Flux through the fake Kubernetes API: opsbot annotates the source and the Kustomization, the fake
kustomize-controller applies the file's image to the Deployment, and the status moves (or fails).

The cluster advances only when opsbot waits between polls (one tick per wait), so nothing sleeps.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.backends import Backends
from bot.backends.gitops.change_actions import GitopsRollback, SetImage, SetImageArgs
from bot.backends.gitops.status import Status, StatusArgs
from bot.backends.gitops.sync import Sync, SyncArgs
from bot.catalog.actions import StepContext
from bot.catalog.config import Environment, FluxSync, GitopsSync, GitopsTarget, KubernetesAccess, OpsbotConfig, Service
from bot.errors import ActionFailed
from bot.settings import Settings
from fakes.kubernetes import FakeKubernetesServer
from fakes.kubernetes.flux import REQUESTED_AT, FakeFlux
from tests.integration.gitops_support import KUSTOMIZATION, Origin, make_origin

PATH = "apps/checkout/production/kustomization.yaml"
IMAGE = "registry.example.com/shop/checkout"
FAST = SyncArgs(poll_seconds=0.001)


@dataclass
class TickingContext(StepContext):
    on_wait: Callable[[], None] = field(default=lambda: None)

    def wait(self, seconds: float) -> None:
        self.on_wait()
        super().wait(seconds)


@pytest.fixture
def origin(tmp_path: Path) -> Origin:
    return make_origin(tmp_path, {PATH: KUSTOMIZATION})


@pytest.fixture
def kube(origin: Origin) -> Iterator[FakeKubernetesServer]:
    with FakeKubernetesServer(auto_tick=False) as server:
        server.add_deployment(
            cluster="prod", namespace="shop", name="checkout", image=f"{IMAGE}:1.4.1", replicas=2, progress_deadline_seconds=60
        )
        flux = FakeFlux(server, "prod")
        flux.add_git_repository("flux-system", "deploy-config", repo_path=str(origin.bare))
        flux.add_applier("Kustomization", "flux-system", "checkout", source="deploy-config", file=PATH, deployment=("shop", "checkout"))
        server.flux = flux  # type: ignore[attr-defined]
        yield server


@pytest.fixture
def make_ctx(tmp_path: Path, origin: Origin, kube: FakeKubernetesServer) -> Iterator[Callable[[], TickingContext]]:
    target = GitopsTarget(
        repo=origin.url, path=PATH, kustomize_image=IMAGE,
        sync=GitopsSync(flux=FluxSync(kind="Kustomization", namespace="flux-system", name="checkout", context="prod")),
    )  # fmt: skip
    kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig", contexts=["prod"])
    config = OpsbotConfig(
        services={"checkout": Service(environments={"production": Environment(gitops=target)})},
        kubernetes=KubernetesAccess(kubeconfig=str(kubeconfig), request_timeout=timedelta(seconds=5)),
    )
    backends = Backends(config, Settings(OPSBOT_GIT_CACHE_DIR=tmp_path / "cache", OPSBOT_GIT_TOKEN=SecretStr("unused")))

    def build() -> TickingContext:
        return TickingContext(
            request_id=7, service="checkout", env="production", target=target, actor_id="U1", actor_name="alice",
            backends=backends, progress=lambda _line: None, cancel_event=threading.Event(), deadline=time.monotonic() + 60,
            runbook="deploy", on_wait=kube.tick,
        )  # fmt: skip

    yield build
    backends.gitops.close()
    backends.kubernetes.close()


def image_of(kube: FakeKubernetesServer) -> str:
    return str(kube.deployment("prod", "shop", "checkout")["spec"]["template"]["spec"]["containers"][0]["image"])


def test_a_commit_is_reconciled_on_request_and_applied_to_the_deployment(
    origin: Origin, kube: FakeKubernetesServer, make_ctx: Callable[[], TickingContext]
) -> None:
    ctx = make_ctx()
    SetImage().run(ctx, SetImageArgs(tag="1.4.2"))
    result = Sync().run(ctx, FAST)

    commit = origin.head()
    patched = [r.path for r in kube.requests if r.method == "PATCH" and "toolkit.fluxcd.io" in r.path]
    assert patched == [
        "/apis/source.toolkit.fluxcd.io/v1/namespaces/flux-system/gitrepositories/deploy-config",
        "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/flux-system/kustomizations/checkout",
    ]
    kustomization = kube.flux.objects[("Kustomization", "flux-system", "checkout")]  # type: ignore[attr-defined]
    assert REQUESTED_AT in kustomization["metadata"]["annotations"]
    assert kustomization["status"]["lastAppliedRevision"] == f"main@sha1:{commit}"
    assert image_of(kube) == f"{IMAGE}:1.4.2"
    assert result.data == {"synced_revision": commit}
    status = Status().run(make_ctx(), StatusArgs())
    assert status.summary == f"image {IMAGE}:1.4.2 at main@{commit[:7]}; Flux Ready=True applied {commit[:7]}"


def test_a_failed_health_check_is_seen_and_the_revert_is_applied_back(
    origin: Origin, kube: FakeKubernetesServer, make_ctx: Callable[[], TickingContext]
) -> None:
    ctx = make_ctx()
    support = GitopsRollback(poll_seconds=0.001)
    point = support.capture(ctx)
    SetImage().run(ctx, SetImageArgs(tag="1.4.2-broken"))

    with pytest.raises(ActionFailed, match=r"Ready=False \(HealthCheckFailed\): timeout waiting for: \[Deployment/shop/checkout"):
        Sync().run(ctx, FAST)
    support.restore(ctx, point)

    assert image_of(kube) == f"{IMAGE}:1.4.1"
    kustomization = kube.flux.objects[("Kustomization", "flux-system", "checkout")]  # type: ignore[attr-defined]
    assert kustomization["status"]["lastAppliedRevision"] == f"main@sha1:{origin.head()}"
