"""The Kubernetes backend against the fake API server, over HTTP through a kubeconfig.

Rollouts advance only when the test says so: ``TickingContext`` runs one controller tick
of the fake each time a step waits between polls, so every test is deterministic and
independent of wall-clock speed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from bot.backends import Backends
from bot.backends.kubernetes import KubernetesBackend
from bot.backends.kubernetes.actions import ACTIONS, ROLLBACKS
from bot.backends.kubernetes.rollout_actions import (
    KubernetesRollback,
    Rollback,
    RollbackArgs,
    SetImage,
    SetImageArgs,
    WaitRollout,
    WaitRolloutArgs,
)
from bot.backends.kubernetes.workload_actions import Restart, RestartArgs, Scale, ScaleArgs, Status, StatusArgs
from bot.catalog.actions import Action, StepContext
from bot.catalog.config import Environment, KubernetesAccess, KubernetesTarget, OpsbotConfig, Service
from bot.catalog.registry import build_registry
from bot.errors import ActionCancelled, ActionFailed, StepTimeout, TemporaryActionError
from bot.service_health import TargetRef
from fakes.kubernetes import FakeKubernetesServer

CLUSTER = "prod-eu"
NAMESPACE = "shop"
REGISTRY = "registry.example.com:5000/shop"
OLD_IMAGE = f"{REGISTRY}/checkout:1.4.1"
NEW_IMAGE = f"{REGISTRY}/checkout:1.4.2"
STRATEGIC = "application/strategic-merge-patch+json"
TARGET = KubernetesTarget(context=CLUSTER, namespace=NAMESPACE, deployment="checkout")
REVISION = "deployment.kubernetes.io/revision"
FAST_POLL = WaitRolloutArgs(poll_seconds=0.001)


# --------------------------------------------------------------------------- fixtures


@dataclass
class TickingContext(StepContext):
    """A StepContext whose waits advance the fake cluster instead of the clock."""

    on_wait: Callable[[], None] = field(default=lambda: None)

    def wait(self, seconds: float) -> None:
        self.on_wait()
        super().wait(seconds)


@pytest.fixture
def server() -> Iterator[FakeKubernetesServer]:
    fake = FakeKubernetesServer(auto_tick=False).start()
    yield fake
    fake.stop()


@pytest.fixture
def kubeconfig(server: FakeKubernetesServer, tmp_path: Path) -> Path:
    return server.write_kubeconfig(tmp_path / "kubeconfig", contexts=[CLUSTER, "staging"], current="staging")


@pytest.fixture
def backends(kubeconfig: Path) -> Iterator[Backends]:
    environment = Environment(kubernetes=TARGET)
    config = OpsbotConfig(
        services={"checkout": Service(environments={"production": environment})},
        kubernetes=KubernetesAccess(kubeconfig=str(kubeconfig), request_timeout=timedelta(seconds=5)),
    )
    built = Backends(config)
    yield built
    built.kubernetes.close()


@pytest.fixture
def checkout(server: FakeKubernetesServer) -> dict[str, Any]:
    return server.add_deployment(
        cluster=CLUSTER, namespace=NAMESPACE, name="checkout", image=OLD_IMAGE, replicas=4, progress_deadline_seconds=60
    )


@pytest.fixture
def progress() -> list[str]:
    return []


@pytest.fixture
def make_ctx(server: FakeKubernetesServer, backends: Backends, progress: list[str]) -> Callable[..., TickingContext]:
    def build(target: KubernetesTarget = TARGET, *, deadline: float = 60.0, ticks: int = 1, **kwargs: Any) -> TickingContext:
        return TickingContext(
            request_id=1,
            service="checkout",
            env="production",
            target=target,
            actor_id="U1",
            actor_name="alice",
            backends=backends,
            progress=progress.append,
            cancel_event=threading.Event(),
            deadline=time.monotonic() + deadline,
            on_wait=lambda: server.tick(ticks),
            **kwargs,
        )

    return build


def stored(server: FakeKubernetesServer, name: str = "checkout") -> dict[str, Any]:
    return server.deployment(CLUSTER, NAMESPACE, name)


def image_of(deployment: dict[str, Any], container: str = "checkout") -> str:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    return str(next(c["image"] for c in containers if c["name"] == container))


def deploy(ctx: StepContext, tag: str) -> None:
    SetImage().run(ctx, SetImageArgs(tag=tag))
    WaitRollout().run(ctx, FAST_POLL)


# --------------------------------------------------------------------------- registry


def test_registry_lists_every_kubernetes_action() -> None:
    registry = build_registry(["bot.backends.kubernetes.actions"], plugins=False)

    assert registry.names() == [
        "kubernetes.job", "kubernetes.restart", "kubernetes.rollback", "kubernetes.scale",
        "kubernetes.set_image", "kubernetes.status", "kubernetes.wait_rollout",
    ]  # fmt: skip
    assert registry.rollback_for("kubernetes") is ROLLBACKS[0]
    assert all(action.target_kind == "kubernetes" for action in ACTIONS)


# --------------------------------------------------------------------------- deploy


def test_deploy_rolls_out_the_new_image(
    server: FakeKubernetesServer, checkout: dict[str, Any], make_ctx: Callable[..., TickingContext], progress: list[str]
) -> None:
    ctx = make_ctx()

    changed = SetImage().run(ctx, SetImageArgs(tag="1.4.2"))
    done = WaitRollout().run(ctx, FAST_POLL)

    assert changed.summary.startswith(f"image {OLD_IMAGE} → {NEW_IMAGE}")
    assert done.summary == "rolled out: 4/4 updated, 4 available, revision 2"
    assert image_of(stored(server)) == NEW_IMAGE
    assert progress and all("pods updated" in line for line in progress)
    assert not progress[0].startswith("4/4"), "counts of the previous rollout are not reported"
    assert len(progress) == len(set(progress)), "progress is reported only when the numbers change"


def test_set_image_sends_a_strategic_merge_patch_of_only_the_named_container(
    server: FakeKubernetesServer, make_ctx: Callable[..., TickingContext]
) -> None:
    sidecar = {"name": "proxy", "image": "envoy:1.30"}
    server.add_deployment(cluster=CLUSTER, namespace=NAMESPACE, name="checkout", image=OLD_IMAGE, replicas=2, extra_containers=[sidecar])
    server.clear_requests()
    read_version = stored(server)["metadata"]["resourceVersion"]

    SetImage().run(make_ctx(), SetImageArgs(image=f"{REGISTRY}/checkout:2.0.0", container="checkout"))

    [patch] = [r for r in server.requests if r.method == "PATCH"]
    assert patch.cluster == CLUSTER
    assert patch.path == f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/checkout"
    assert patch.content_type == STRATEGIC
    assert patch.body["spec"] == {"template": {"spec": {"containers": [{"name": "checkout", "image": f"{REGISTRY}/checkout:2.0.0"}]}}}
    assert patch.body["metadata"] == {"resourceVersion": read_version}, "sent against the read, so a change meanwhile is refused"
    assert image_of(stored(server), "proxy") == "envoy:1.30"


def test_set_image_with_several_containers_and_none_named_lists_them(
    server: FakeKubernetesServer, make_ctx: Callable[..., TickingContext]
) -> None:
    server.add_deployment(
        cluster=CLUSTER, namespace=NAMESPACE, name="checkout", image=OLD_IMAGE,
        extra_containers=[{"name": "proxy", "image": "envoy:1.30"}],
    )  # fmt: skip

    with pytest.raises(ActionFailed, match=r"several containers \(checkout, proxy\)"):
        SetImage().run(make_ctx(), SetImageArgs(tag="1.4.2"))


def test_broken_image_fails_the_rollout_and_restore_brings_the_old_image_back(
    server: FakeKubernetesServer, checkout: dict[str, Any], make_ctx: Callable[..., TickingContext]
) -> None:
    ctx = make_ctx()
    support = KubernetesRollback(poll_seconds=0.001)
    point = support.capture(ctx)

    SetImage().run(ctx, SetImageArgs(tag="1.4.2-broken"))
    with pytest.raises(ActionFailed) as failure:
        WaitRollout().run(ctx, FAST_POLL)
    restored = support.restore(ctx, point)

    assert point == {"revision": 1, "image": OLD_IMAGE}
    assert failure.value.user_message.startswith(f'rollout of deployment shop/checkout in cluster {CLUSTER} failed: ReplicaSet "checkout-')
    assert failure.value.user_message.endswith("has timed out progressing")
    after = stored(server)
    assert image_of(after) == OLD_IMAGE
    assert after["metadata"]["annotations"][REVISION] == "3", "kubectl's undo gives the old template a new revision"
    assert after["status"]["availableReplicas"] == 4
    assert restored.summary.startswith(f"restored deployment shop/checkout in cluster {CLUSTER} to revision 1")
    assert "rolled out: 4/4 updated, 4 available, revision 3" in restored.summary


# --------------------------------------------------------------------------- rollback


def test_rollback_to_an_explicit_revision(
    server: FakeKubernetesServer, checkout: dict[str, Any], make_ctx: Callable[..., TickingContext]
) -> None:
    ctx = make_ctx()
    deploy(ctx, "1.4.2")
    deploy(ctx, "1.4.3")

    result = Rollback().run(ctx, RollbackArgs(to_revision=1))
    WaitRollout().run(ctx, FAST_POLL)

    assert result.summary == (
        f"rolled back deployment shop/checkout in cluster {CLUSTER} to revision 1 (image {REGISTRY}/checkout:1.4.3 → {OLD_IMAGE})"
    )
    assert image_of(stored(server)) == OLD_IMAGE
    assert stored(server)["metadata"]["annotations"][REVISION] == "4"
    [patch] = [r for r in server.requests if r.method == "PATCH" and "dryRun" not in r.query][-1:]
    assert patch.content_type == "application/json-patch+json"
    assert [op["path"] for op in patch.body] == ["/spec/template", "/metadata/annotations"]
    assert "pod-template-hash" not in patch.body[0]["value"]["metadata"]["labels"]


def test_rollback_without_revision_goes_to_the_previous_one(
    server: FakeKubernetesServer, checkout: dict[str, Any], make_ctx: Callable[..., TickingContext]
) -> None:
    ctx = make_ctx()
    deploy(ctx, "1.4.2")
    deploy(ctx, "1.4.3")

    Rollback().run(ctx, RollbackArgs())

    assert image_of(stored(server)) == NEW_IMAGE


def test_rollback_to_a_missing_revision_lists_the_available_ones(checkout: dict[str, Any], make_ctx: Callable[..., TickingContext]) -> None:
    ctx = make_ctx()
    deploy(ctx, "1.4.2")

    with pytest.raises(ActionFailed) as failure:
        Rollback().run(ctx, RollbackArgs(to_revision=9))

    assert failure.value.user_message == (
        f"cannot roll back deployment shop/checkout in cluster {CLUSTER}: revision 9 not found; available: 1, 2"
    )


def test_rollback_of_a_paused_deployment_is_refused(
    server: FakeKubernetesServer, checkout: dict[str, Any], backends: Backends, make_ctx: Callable[..., TickingContext]
) -> None:
    ctx = make_ctx()
    deploy(ctx, "1.4.2")
    backends.kubernetes.cluster(CLUSTER).patch_deployment(NAMESPACE, "checkout", {"spec": {"paused": True}}, patch_type="strategic")

    with pytest.raises(ActionFailed, match="you cannot rollback a paused deployment"):
        Rollback().run(ctx, RollbackArgs())

    assert image_of(stored(server)) == NEW_IMAGE


def test_rollback_to_the_current_template_is_reported_and_skipped(
    server: FakeKubernetesServer, checkout: dict[str, Any], make_ctx: Callable[..., TickingContext]
) -> None:
    ctx = make_ctx()
    deploy(ctx, "1.4.2")
    server.clear_requests()

    result = Rollback().run(ctx, RollbackArgs(to_revision=2))

    assert result.summary == (f"skipped rollback: deployment shop/checkout in cluster {CLUSTER} is already at that template (revision 2)")
    assert result.data["skipped"] is True
    assert not [r for r in server.requests if r.method == "PATCH"]


# --------------------------------------------------------------------------- scale, restart, status


def test_scale_uses_the_scale_subresource(
    server: FakeKubernetesServer, checkout: dict[str, Any], make_ctx: Callable[..., TickingContext]
) -> None:
    server.clear_requests()

    result = Scale().run(make_ctx(), ScaleArgs(replicas=6))

    assert result.summary.startswith("replicas 4 → 6")
    [patch] = [r for r in server.requests if r.method == "PATCH"]
    assert patch.path == f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/checkout/scale"
    assert patch.body == {"spec": {"replicas": 6}}
    assert stored(server)["spec"]["replicas"] == 6


def test_restart_sets_the_annotation_and_a_new_replicaset_appears(
    server: FakeKubernetesServer, checkout: dict[str, Any], make_ctx: Callable[..., TickingContext]
) -> None:
    ctx = make_ctx()
    before = {rs["metadata"]["name"] for rs in server.replicasets(CLUSTER, NAMESPACE)}

    result = Restart().run(ctx, RestartArgs())
    WaitRollout().run(ctx, FAST_POLL)

    annotations = stored(server)["spec"]["template"]["metadata"]["annotations"]
    assert annotations["kubectl.kubernetes.io/restartedAt"] == result.data["restartedAt"]
    assert result.summary.startswith("pods restarted (rolling), replicas 4")
    after = {rs["metadata"]["name"] for rs in server.replicasets(CLUSTER, NAMESPACE)}
    assert after - before, "a restart creates a new ReplicaSet"


def test_status_summarises_and_details_the_deployment(checkout: dict[str, Any], make_ctx: Callable[..., TickingContext]) -> None:
    result = Status().run(make_ctx(), StatusArgs())

    assert result.summary == f"checkout/production: 4/4 ready, image {OLD_IMAGE}, revision 1, rollout complete"
    details = "\n".join(result.details)
    assert "replicas: desired 4, ready 4, updated 4, available 4" in details
    assert f"image checkout: {OLD_IMAGE}" in details
    assert "revision: 1" in details
    assert "condition Available=True (MinimumReplicasAvailable)" in details
    assert "condition Progressing=True (NewReplicaSetAvailable)" in details
    assert sum(line.startswith("pod checkout-") for line in result.details) == 4


# --------------------------------------------------------------------------- plans


PLANS: list[tuple[Action[Any], Any, list[tuple[str, str | None, str | None]]]] = [
    (SetImage(), SetImageArgs(tag="1.4.2"), [("image", OLD_IMAGE, NEW_IMAGE), ("replicas", "4", "4")]),
    (Scale(), ScaleArgs(replicas=6), [("replicas", "4", "6")]),
    (Restart(), RestartArgs(), [("pods", "running", "restarted (rolling), replicas 4")]),
]


@pytest.mark.parametrize(("action", "args", "expected"), PLANS, ids=["set_image", "scale", "restart"])
def test_plans_change_nothing(
    server: FakeKubernetesServer,
    checkout: dict[str, Any],
    make_ctx: Callable[..., TickingContext],
    action: Action[Any],
    args: Any,
    expected: list[tuple[str, str | None, str | None]],
) -> None:
    before = stored(server)
    server.clear_requests()

    changes = action.plan(make_ctx(), args)
    server.tick(3)

    assert [(c.field, c.before, c.after) for c in changes] == expected
    after = stored(server)
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"] == before["spec"]
    assert all(r.query.get("dryRun") == "All" for r in server.requests if r.method == "PATCH")


def test_rollback_plan_changes_nothing(
    server: FakeKubernetesServer, checkout: dict[str, Any], make_ctx: Callable[..., TickingContext]
) -> None:
    deploy(make_ctx(), "1.4.2")
    generation = stored(server)["metadata"]["generation"]

    changes = Rollback().plan(make_ctx(), RollbackArgs())

    assert [change.render() for change in changes] == ["revision 2 → 1", f"image {NEW_IMAGE} → {OLD_IMAGE}"]
    assert stored(server)["metadata"]["generation"] == generation
    assert image_of(stored(server)) == NEW_IMAGE


# --------------------------------------------------------------------------- errors


def test_forbidden_names_cluster_namespace_and_object(
    server: FakeKubernetesServer, checkout: dict[str, Any], make_ctx: Callable[..., TickingContext]
) -> None:
    server.forbid("patch", "deployments")

    with pytest.raises(ActionFailed) as failure:
        SetImage().run(make_ctx(), SetImageArgs(tag="1.4.2"))

    message = failure.value.user_message
    assert message.startswith(f"Kubernetes refused to patch deployment shop/checkout in cluster {CLUSTER}: forbidden (403): ")
    assert 'cannot patch resource "deployments"' in message
    assert not failure.value.temporary
    assert failure.value.__cause__ is not None


def test_missing_deployment_is_named(checkout: dict[str, Any], make_ctx: Callable[..., TickingContext]) -> None:
    missing = KubernetesTarget(context=CLUSTER, namespace=NAMESPACE, deployment="payments")

    with pytest.raises(ActionFailed) as failure:
        Status().run(make_ctx(missing), StatusArgs())

    assert failure.value.user_message == f"no deployment payments in namespace shop of cluster {CLUSTER}"


def test_invalid_patch_reports_the_status_message(checkout: dict[str, Any], make_ctx: Callable[..., TickingContext]) -> None:
    with pytest.raises(ActionFailed) as failure:
        Scale().run(make_ctx(), ScaleArgs.model_construct(replicas=-1))

    assert failure.value.user_message.startswith(
        f"Kubernetes rejected the request to scale deployment shop/checkout in cluster {CLUSTER}: invalid (422): "
    )


def test_server_errors_are_temporary(
    server: FakeKubernetesServer, checkout: dict[str, Any], make_ctx: Callable[..., TickingContext]
) -> None:
    server.inject_fault("503", method="GET", times=None)

    with pytest.raises(TemporaryActionError, match=r"service unavailable \(503\)"):
        Status().run(make_ctx(), StatusArgs())


def test_wait_rollout_rides_out_a_brief_api_outage(
    server: FakeKubernetesServer, checkout: dict[str, Any], make_ctx: Callable[..., TickingContext]
) -> None:
    ctx = make_ctx()
    SetImage().run(ctx, SetImageArgs(tag="1.4.2"))
    server.inject_fault("503", method="GET", times=2)

    assert WaitRollout().run(ctx, FAST_POLL).summary.startswith("rolled out: 4/4 updated")


def test_unreachable_cluster_is_temporary(
    server: FakeKubernetesServer, checkout: dict[str, Any], make_ctx: Callable[..., TickingContext]
) -> None:
    server.inject_fault("reset", times=None)

    with pytest.raises(TemporaryActionError) as failure:
        Status().run(make_ctx(), StatusArgs())

    assert failure.value.user_message == (
        f"could not reach Kubernetes to read deployment shop/checkout in cluster {CLUSTER}: connection reset by the server; try again"
    )


def test_refused_connection_is_temporary(
    server: FakeKubernetesServer, checkout: dict[str, Any], make_ctx: Callable[..., TickingContext]
) -> None:
    ctx = make_ctx()
    server.stop()

    with pytest.raises(TemporaryActionError) as failure:
        Status().run(ctx, StatusArgs())

    assert failure.value.user_message == (
        f"could not reach Kubernetes to read deployment shop/checkout in cluster {CLUSTER}: connection refused; try again"
    )


def test_request_timeout_is_temporary_and_bounded(
    server: FakeKubernetesServer, checkout: dict[str, Any], kubeconfig: Path, make_ctx: Callable[..., TickingContext]
) -> None:
    access = KubernetesAccess(kubeconfig=str(kubeconfig), request_timeout=timedelta(seconds=1))
    backend = KubernetesBackend(access)
    server.inject_fault("timeout", method="GET", times=None, hang_seconds=20)
    started = time.monotonic()

    with pytest.raises(TemporaryActionError) as failure:
        backend.cluster(CLUSTER).read_deployment(NAMESPACE, "checkout")

    backend.close()
    assert failure.value.user_message == (
        f"Kubernetes did not answer in time when asked to read deployment shop/checkout in cluster {CLUSTER}; try again"
    )
    assert time.monotonic() - started < 10, "a timed-out read is not retried"


def test_one_client_per_context_shared_by_threads_and_no_global_config(backends: Backends) -> None:
    default_before = k8s.Configuration._default
    found: list[object] = []

    def lookup() -> None:
        found.append(backends.kubernetes.cluster(CLUSTER))

    threads = [threading.Thread(target=lookup) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len({id(api) for api in found}) == 1
    assert backends.kubernetes.cluster("staging") is not found[0]
    assert k8s.Configuration._default is default_before


def test_unknown_context_is_a_clear_config_error(checkout: dict[str, Any], make_ctx: Callable[..., TickingContext]) -> None:
    elsewhere = KubernetesTarget(context="prod-us", namespace=NAMESPACE, deployment="checkout")

    with pytest.raises(ActionFailed, match="cannot load Kubernetes credentials for cluster prod-us"):
        Status().run(make_ctx(elsewhere), StatusArgs())


# --------------------------------------------------------------------------- cancellation and deadlines


def test_cancel_stops_wait_rollout_promptly(
    server: FakeKubernetesServer, checkout: dict[str, Any], make_ctx: Callable[..., TickingContext]
) -> None:
    ctx = make_ctx(ticks=0)
    SetImage().run(ctx, SetImageArgs(tag="1.4.2"))
    outcome: list[ActionCancelled] = []

    def wait() -> None:
        try:
            WaitRollout().run(ctx, WaitRolloutArgs(poll_seconds=60))
        except ActionCancelled as exc:
            outcome.append(exc)

    worker = threading.Thread(target=wait)
    worker.start()
    give_up = time.monotonic() + 10
    while server.requests[-1].method != "GET" and time.monotonic() < give_up:
        time.sleep(0.01)  # until the first poll was made and the step sleeps
    assert server.requests[-1].method == "GET", "the rollout was never polled: the cancel would not interrupt a sleeping poll"
    ctx.cancel_event.set()
    worker.join(timeout=10)

    assert not worker.is_alive(), "a 60 s poll must wake at once on cancel"
    assert len(outcome) == 1


def test_deadline_gives_step_timeout(
    server: FakeKubernetesServer, checkout: dict[str, Any], make_ctx: Callable[..., TickingContext]
) -> None:
    now = [0.0]

    def advance() -> None:
        now[0] += 10

    ctx = make_ctx(clock=lambda: now[0])
    ctx.deadline = 35  # simulated seconds: three polls, ten seconds each
    ctx.on_wait = advance
    SetImage().run(ctx, SetImageArgs(tag="1.4.2"))

    with pytest.raises(StepTimeout) as failure:
        WaitRollout().run(ctx, WaitRolloutArgs(poll_seconds=0.001))

    assert failure.value.user_message.startswith(
        f"rollout of deployment shop/checkout in cluster {CLUSTER} did not finish in time: Waiting for"
    )


# --------------------------------------------------------------------------- health


def test_health_of_makes_two_calls_per_namespace(server: FakeKubernetesServer, backends: Backends) -> None:
    items: list[tuple[TargetRef, KubernetesTarget]] = []
    for namespace in ("shop", "payments", "search"):
        for name in ("api", "worker"):
            server.add_deployment(cluster=CLUSTER, namespace=namespace, name=name, image=f"{name}:1", replicas=2)
            target = KubernetesTarget(context=CLUSTER, namespace=namespace, deployment=name)
            items.append((TargetRef(service=f"{namespace}-{name}", env="production"), target))
    server.clear_requests()

    health = backends.kubernetes.health_of(items)

    assert [h.service for h in health] == [ref.service for ref, _ in items]
    assert {h.state for h in health} == {"healthy"}
    assert health[0].counts() == "2/2 ready" and health[0].version == "api:1" and health[0].revision == "1"
    calls = sorted((r.method, r.path) for r in server.requests)
    assert calls == sorted(
        [("GET", f"/apis/apps/v1/namespaces/{ns}/deployments") for ns in ("shop", "payments", "search")]
        + [("GET", f"/api/v1/namespaces/{ns}/pods") for ns in ("shop", "payments", "search")]
    )


def test_health_reports_failed_crash_looping_and_missing_deployments(
    server: FakeKubernetesServer, checkout: dict[str, Any], backends: Backends, make_ctx: Callable[..., TickingContext]
) -> None:
    ctx = make_ctx()
    SetImage().run(ctx, SetImageArgs(tag="1.4.2-broken"))
    with pytest.raises(ActionFailed):
        WaitRollout().run(ctx, FAST_POLL)
    missing = KubernetesTarget(context=CLUSTER, namespace=NAMESPACE, deployment="payments")

    failed, unknown = backends.kubernetes.health_of(
        [(TargetRef("checkout", "production"), TARGET), (TargetRef("payments", "production"), missing)]
    )

    assert failed.state == "failed"
    assert any(reason.startswith("ProgressDeadlineExceeded: ") for reason in failed.reasons)
    assert any("CrashLoopBackOff" in reason for reason in failed.reasons)
    assert failed.restarts > 0
    assert unknown.state == "unknown"
    assert unknown.reasons == (f"no deployment payments in namespace shop of cluster {CLUSTER}",)


def test_health_of_an_unreachable_namespace_is_unknown_not_an_error(
    server: FakeKubernetesServer, checkout: dict[str, Any], backends: Backends
) -> None:
    server.forbid("list", "pods", namespace=NAMESPACE)

    [health] = backends.kubernetes.health_of([(TargetRef("checkout", "production"), TARGET)])

    assert health.state == "unknown"
    assert "forbidden (403)" in health.reasons[0]
