"""The fake Kubernetes API server, driven over HTTP by the official client.

Every assertion here is about behaviour a real apiserver + deployment
controller exhibits and a client can depend on: Status bodies, patch
semantics, generation bookkeeping, ReplicaSet revisions and rollout
progress. ``auto_tick=False`` plus explicit ``tick()`` keeps it deterministic.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from fakes.kubernetes import FakeKubernetesServer

IMAGE_V1 = "registry.example.com/shop/checkout:1.4.1"
IMAGE_V2 = "registry.example.com/shop/checkout:1.4.2"
BROKEN = "registry.example.com/shop/checkout:1.4.2-broken"
SIDECAR = {"name": "log-shipper", "image": "registry.example.com/infra/log-shipper:2.0"}
SMP = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
REVISION = "deployment.kubernetes.io/revision"


# -- fixtures ---------------------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeKubernetesServer]:
    with FakeKubernetesServer(auto_tick=False) as server:
        server.add_deployment(
            cluster="staging",
            namespace="shop",
            name="checkout",
            image=IMAGE_V1,
            replicas=4,
            container="checkout",
            labels={"app": "checkout"},
            extra_containers=[SIDECAR],
        )
        yield server


@pytest.fixture
def kubeconfig(fake: FakeKubernetesServer, tmp_path: Path) -> Path:
    return fake.write_kubeconfig(tmp_path / "kubeconfig", contexts=["prod-eu", "staging"], current="staging")


def _client(kubeconfig: Path, context: str) -> k8s.ApiClient:
    api: k8s.ApiClient = k8s_config.new_client_from_config(config_file=str(kubeconfig), context=context)  # type: ignore[no-untyped-call]
    return api


@pytest.fixture
def api_client(kubeconfig: Path) -> Iterator[k8s.ApiClient]:
    api = _client(kubeconfig, "staging")
    yield api
    api.close()  # type: ignore[no-untyped-call]


@pytest.fixture
def apps(api_client: k8s.ApiClient) -> k8s.AppsV1Api:
    return k8s.AppsV1Api(api_client)


@pytest.fixture
def core(api_client: k8s.ApiClient) -> k8s.CoreV1Api:
    return k8s.CoreV1Api(api_client)


# -- helpers ----------------------------------------------------------------------


def status_of(error: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(str(error.body))
    assert body["kind"] == "Status"
    assert body["apiVersion"] == "v1"
    assert body["status"] == "Failure"
    assert body["code"] == error.status
    return body


def raw(fake: FakeKubernetesServer, method: str, path: str, body: Any = None, content_type: str = "") -> tuple[int, Any]:
    """A request the official client cannot make (it rewrites some headers)."""
    connection = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=5)
    try:
        headers = {"Content-Type": content_type} if content_type else {}
        payload = json.dumps(body).encode() if body is not None else None
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def image_patch(image: str, container: str = "checkout") -> dict[str, Any]:
    return {"spec": {"template": {"spec": {"containers": [{"name": container, "image": image}]}}}}


def rollout_status(deployment: dict[str, Any]) -> tuple[str, bool]:
    """kubectl's DeploymentStatusViewer logic, to read the fake as kubectl would."""
    name = deployment["metadata"]["name"]
    status = deployment.get("status") or {}
    if deployment["metadata"]["generation"] > status.get("observedGeneration", 0):
        return "Waiting for deployment spec update to be observed...", False
    for condition in status.get("conditions") or []:
        if condition["type"] == "Progressing" and condition["reason"] == "ProgressDeadlineExceeded":
            return f'deployment "{name}" exceeded its progress deadline', False
    desired = deployment["spec"]["replicas"]
    updated, replicas = status.get("updatedReplicas", 0), status.get("replicas", 0)
    available = status.get("availableReplicas", 0)
    if updated < desired:
        return f'Waiting for deployment "{name}" rollout to finish: {updated} out of {desired} new replicas have been updated...', False
    if replicas > updated:
        return f'Waiting for deployment "{name}" rollout to finish: {replicas - updated} old replicas are pending termination...', False
    if available < updated:
        return f'Waiting for deployment "{name}" rollout to finish: {available} of {updated} updated replicas are available...', False
    return f'deployment "{name}" successfully rolled out', True


def tick_until_rolled_out(fake: FakeKubernetesServer, cluster: str = "staging", limit: int = 10) -> list[str]:
    messages = []
    for _ in range(limit):
        fake.tick()
        message, done = rollout_status(fake.deployment(cluster, "shop", "checkout"))
        messages.append(message)
        if done:
            return messages
    raise AssertionError(f"rollout did not finish in {limit} ticks: {messages}")


def condition(deployment: dict[str, Any], kind: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in deployment["status"]["conditions"] if c["type"] == kind)
    return found


def replicasets_by_revision(fake: FakeKubernetesServer, cluster: str = "staging") -> dict[str, dict[str, Any]]:
    return {rs["metadata"]["annotations"][REVISION]: rs for rs in fake.replicasets(cluster, "shop")}


# -- patch content types --------------------------------------------------------------


def test_client_sends_strategic_merge_patch_for_a_dict_body_by_default(fake: FakeKubernetesServer, apps: k8s.AppsV1Api) -> None:
    """kubernetes 37's REST layer rewrites json-patch to SMP when the body is not a list."""
    apps.patch_namespaced_deployment("checkout", "shop", {"metadata": {"labels": {"team": "payments"}}})
    apps.patch_namespaced_deployment("checkout", "shop", [{"op": "replace", "path": "/spec/replicas", "value": 4}])

    patches = [r for r in fake.requests if r.method == "PATCH"]
    assert [r.content_type for r in patches] == [SMP, JSON_PATCH]
    assert patches[0].body == {"metadata": {"labels": {"team": "payments"}}}
    assert patches[0].path == "/apis/apps/v1/namespaces/shop/deployments/checkout"
    assert patches[0].cluster == "staging"


def test_object_body_under_json_patch_content_type_is_400_like_the_apiserver(fake: FakeKubernetesServer) -> None:
    path = "/clusters/staging/apis/apps/v1/namespaces/shop/deployments/checkout"
    code, body = raw(fake, "PATCH", path, {"spec": {"replicas": 3}}, JSON_PATCH + "; charset=utf-8")

    assert code == 400
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "error decoding patch: json: cannot unmarshal object into Go value of type []handlers.jsonPatchOp",
        "reason": "BadRequest",
        "code": 400,
    }
    assert fake.deployment("staging", "shop", "checkout")["spec"]["replicas"] == 4


def test_strategic_merge_of_image_by_name_keeps_other_containers(apps: k8s.AppsV1Api) -> None:
    result = apps.patch_namespaced_deployment("checkout", "shop", image_patch(IMAGE_V2), _content_type=SMP).to_dict()

    containers = [(c["name"], c["image"]) for c in result["spec"]["template"]["spec"]["containers"]]
    assert containers == [("checkout", IMAGE_V2), ("log-shipper", SIDECAR["image"])]


def test_merge_patch_replaces_the_container_list(apps: k8s.AppsV1Api) -> None:
    result = apps.patch_namespaced_deployment("checkout", "shop", image_patch(IMAGE_V2), _content_type=MERGE).to_dict()

    containers = result["spec"]["template"]["spec"]["containers"]
    assert [(c["name"], c["image"]) for c in containers] == [("checkout", IMAGE_V2)]
    assert containers[0]["image_pull_policy"] == "IfNotPresent", "defaults re-applied"


def test_json_patch_replaces_the_first_container_image(apps: k8s.AppsV1Api) -> None:
    ops = [{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": IMAGE_V2}]
    result = apps.patch_namespaced_deployment("checkout", "shop", ops, _content_type=JSON_PATCH).to_dict()

    assert [c["image"] for c in result["spec"]["template"]["spec"]["containers"]] == [IMAGE_V2, SIDECAR["image"]]


def test_failed_json_patch_test_op_is_a_generic_422_and_changes_nothing(fake: FakeKubernetesServer, apps: k8s.AppsV1Api) -> None:
    ops = [
        {"op": "test", "path": "/spec/replicas", "value": 99},
        {"op": "replace", "path": "/spec/replicas", "value": 1},
    ]
    with pytest.raises(ApiException) as caught:
        apps.patch_namespaced_deployment("checkout", "shop", ops, _content_type=JSON_PATCH)

    body = status_of(caught.value)
    assert caught.value.status == 422
    assert body["reason"] == "Invalid"
    assert body["message"] == "the server rejected our request due to an error in our request"
    assert fake.deployment("staging", "shop", "checkout")["spec"]["replicas"] == 4


def test_apply_patch_and_unknown_content_types_are_415(apps: k8s.AppsV1Api) -> None:
    with pytest.raises(ApiException) as caught:
        apps.patch_namespaced_deployment("checkout", "shop", {"spec": {}}, _content_type="application/apply-patch+yaml")

    body = status_of(caught.value)
    assert caught.value.status == 415
    assert body["reason"] == "UnsupportedMediaType"
    assert body["message"].startswith("the body of the request was in an unknown format - accepted media types include:")


# -- Status errors ------------------------------------------------------------------


def test_missing_deployment_is_a_404_status(apps: k8s.AppsV1Api) -> None:
    with pytest.raises(ApiException) as caught:
        apps.read_namespaced_deployment("nope", "shop")

    assert caught.value.status == 404
    assert status_of(caught.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'deployments.apps "nope" not found',
        "reason": "NotFound",
        "details": {"name": "nope", "group": "apps", "kind": "deployments"},
        "code": 404,
    }


def new_deployment(name: str, image: str = IMAGE_V1) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": name, "image": image}]}},
        },
    }


def deployment_model(name: str) -> k8s.V1Deployment:
    model = k8s.V1Deployment.from_dict(new_deployment(name))
    assert model is not None
    return model


def test_create_returns_201_defaults_and_then_409_already_exists(fake: FakeKubernetesServer, apps: k8s.AppsV1Api) -> None:
    created = apps.create_namespaced_deployment("shop", deployment_model("cart")).to_dict()
    assert created["metadata"]["generation"] == 1
    assert created["spec"]["strategy"]["rolling_update"]["max_surge"] == "25%"
    assert created["spec"]["revision_history_limit"] == 10
    assert created["status"]["observed_generation"] is None, "nothing observed until the controller runs"

    with pytest.raises(ApiException) as caught:
        apps.create_namespaced_deployment("shop", deployment_model("cart"))
    body = status_of(caught.value)
    assert (caught.value.status, body["reason"]) == (409, "AlreadyExists")
    assert body["message"] == 'deployments.apps "cart" already exists'

    fake.tick(3)
    assert rollout_status(fake.deployment("staging", "shop", "cart")) == ('deployment "cart" successfully rolled out', True)


def test_create_of_an_object_read_back_from_the_server_is_500_for_its_resource_version(apps: k8s.AppsV1Api) -> None:
    existing = apps.read_namespaced_deployment("checkout", "shop")

    with pytest.raises(ApiException) as caught:
        apps.create_namespaced_deployment("shop", existing)

    body = status_of(caught.value)
    assert (caught.value.status, body["message"]) == (500, "resourceVersion should not be set on objects to be created")
    assert "reason" not in body


def test_create_in_a_missing_namespace_is_404_for_the_namespace(apps: k8s.AppsV1Api) -> None:
    with pytest.raises(ApiException) as caught:
        apps.create_namespaced_deployment("nowhere", deployment_model("cart"))

    assert status_of(caught.value)["details"] == {"name": "nowhere", "kind": "namespaces"}


def test_replace_with_stale_resource_version_is_409_conflict(apps: k8s.AppsV1Api) -> None:
    stale = apps.read_namespaced_deployment("checkout", "shop")
    apps.patch_namespaced_deployment("checkout", "shop", {"metadata": {"labels": {"team": "payments"}}}, _content_type=MERGE)
    assert stale.spec is not None
    stale.spec.replicas = 2

    with pytest.raises(ApiException) as caught:
        apps.replace_namespaced_deployment("checkout", "shop", stale)

    body = status_of(caught.value)
    assert (caught.value.status, body["reason"]) == (409, "Conflict")
    assert body["message"] == (
        'Operation cannot be fulfilled on deployments.apps "checkout": '
        "the object has been modified; please apply your changes to the latest version and try again"
    )
    fresh = apps.read_namespaced_deployment("checkout", "shop")
    assert fresh.spec is not None
    fresh.spec.replicas = 2
    assert apps.replace_namespaced_deployment("checkout", "shop", fresh).to_dict()["spec"]["replicas"] == 2


def test_negative_replicas_is_422_invalid_with_causes(apps: k8s.AppsV1Api) -> None:
    with pytest.raises(ApiException) as caught:
        apps.patch_namespaced_deployment("checkout", "shop", {"spec": {"replicas": -1}}, _content_type=MERGE)

    body = status_of(caught.value)
    assert caught.value.status == 422
    assert body["reason"] == "Invalid"
    assert body["message"] == 'Deployment.apps "checkout" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0'
    assert body["details"] == {
        "name": "checkout",
        "group": "apps",
        "kind": "Deployment",
        "causes": [
            {"reason": "FieldValueInvalid", "message": "Invalid value: -1: must be greater than or equal to 0", "field": "spec.replicas"}
        ],
    }


def test_unnamed_or_imageless_containers_are_422(apps: k8s.AppsV1Api) -> None:
    unnamed = {"spec": {"template": {"spec": {"containers": [{"image": IMAGE_V2}]}}}}
    with pytest.raises(ApiException) as caught:
        apps.patch_namespaced_deployment("checkout", "shop", unnamed, _content_type=MERGE)
    causes = status_of(caught.value)["details"]["causes"]
    assert {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.template.spec.containers[0].name"} in causes

    with pytest.raises(ApiException) as caught:
        apps.patch_namespaced_deployment("checkout", "shop", image_patch(""), _content_type=SMP)
    causes = status_of(caught.value)["details"]["causes"]
    assert causes == [{"reason": "FieldValueRequired", "message": "Required value", "field": "spec.template.spec.containers[0].image"}]


def test_strategic_merge_of_a_container_without_name_is_a_plain_500_like_upstream(apps: k8s.AppsV1Api) -> None:
    unnamed = {"spec": {"template": {"spec": {"containers": [{"image": IMAGE_V2}]}}}}
    with pytest.raises(ApiException) as caught:
        apps.patch_namespaced_deployment("checkout", "shop", unnamed, _content_type=SMP)

    body = status_of(caught.value)
    assert caught.value.status == 500
    assert "reason" not in body
    assert body["message"] == f"map: map[image:{IMAGE_V2}] does not contain declared merge key: name"


def test_forbidden_verbs_get_rbac_style_403(fake: FakeKubernetesServer, apps: k8s.AppsV1Api) -> None:
    fake.forbid("patch", "deployments", cluster="staging", namespace="shop")
    fake.forbid("get", "deployments/scale")

    with pytest.raises(ApiException) as caught:
        apps.patch_namespaced_deployment("checkout", "shop", image_patch(IMAGE_V2), _content_type=SMP)
    body = status_of(caught.value)
    assert (caught.value.status, body["reason"]) == (403, "Forbidden")
    assert body["message"] == (
        'deployments.apps "checkout" is forbidden: User "system:serviceaccount:opsbot:opsbot" '
        'cannot patch resource "deployments" in API group "apps" in the namespace "shop"'
    )
    assert body["details"] == {"name": "checkout", "group": "apps", "kind": "deployments"}

    with pytest.raises(ApiException) as caught:
        apps.read_namespaced_deployment_scale("checkout", "shop")
    assert 'cannot get resource "deployments/scale" in API group "apps"' in status_of(caught.value)["message"]

    assert apps.read_namespaced_deployment("checkout", "shop").to_dict()["metadata"]["name"] == "checkout"
    fake.allow_all()
    apps.patch_namespaced_deployment("checkout", "shop", image_patch(IMAGE_V2), _content_type=SMP)


def test_unknown_cluster_and_unknown_paths_are_404_and_wrong_verbs_405(fake: FakeKubernetesServer) -> None:
    code, body = raw(fake, "GET", "/clusters/nowhere/apis/apps/v1/namespaces/shop/deployments")
    assert (code, body["reason"]) == (404, "NotFound")
    code, body = raw(fake, "GET", "/clusters/staging/apis/apps/v1/namespaces/shop/statefulsets")
    assert (code, body["message"]) == (404, "the server could not find the requested resource")
    code, body = raw(fake, "POST", "/clusters/staging/apis/apps/v1/namespaces/shop/deployments/checkout", {})
    assert (code, body["reason"]) == (405, "MethodNotAllowed")
    code, body = raw(fake, "GET", "/clusters/staging/version")
    assert code == 200
    assert body["major"] == "1"


# -- dry run and generations ------------------------------------------------------------


def test_dry_run_all_returns_the_result_but_persists_nothing(fake: FakeKubernetesServer, apps: k8s.AppsV1Api) -> None:
    before = fake.deployment("staging", "shop", "checkout")

    result = apps.patch_namespaced_deployment("checkout", "shop", image_patch(IMAGE_V2), dry_run="All", _content_type=SMP).to_dict()
    assert result["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE_V2
    assert result["metadata"]["generation"] == 2

    scale = apps.patch_namespaced_deployment_scale("checkout", "shop", {"spec": {"replicas": 9}}, dry_run="All", _content_type=MERGE)
    assert scale.to_dict()["spec"]["replicas"] == 9
    created = apps.create_namespaced_deployment("shop", deployment_model("cart"), dry_run="All").to_dict()
    assert created["metadata"]["uid"]
    assert created["metadata"]["resource_version"] is None

    fake.tick(3)
    assert fake.deployment("staging", "shop", "checkout") == before
    assert len(fake.replicasets("staging", "shop")) == 1
    with pytest.raises(ApiException):
        apps.read_namespaced_deployment("cart", "shop")
    with pytest.raises(ApiException) as caught:
        apps.patch_namespaced_deployment("checkout", "shop", image_patch(IMAGE_V2), dry_run="Sometimes", _content_type=SMP)
    assert status_of(caught.value)["message"] == (
        'PatchOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: []string{"Sometimes"}: supported values: "All"'
    )


def test_generation_moves_only_on_spec_changes_and_is_observed_on_the_next_tick(fake: FakeKubernetesServer, apps: k8s.AppsV1Api) -> None:
    label = {"metadata": {"labels": {"team": "payments"}}}
    before = apps.read_namespaced_deployment("checkout", "shop").to_dict()["metadata"]
    labelled = apps.patch_namespaced_deployment("checkout", "shop", label, _content_type=MERGE).to_dict()["metadata"]
    assert labelled["generation"] == before["generation"] == 1
    assert int(labelled["resource_version"]) > int(before["resource_version"])

    noop = apps.patch_namespaced_deployment("checkout", "shop", label, _content_type=MERGE).to_dict()["metadata"]
    assert noop["resource_version"] == labelled["resource_version"], "no-op writes do not move resourceVersion"

    changed = apps.patch_namespaced_deployment("checkout", "shop", image_patch(IMAGE_V2), _content_type=SMP).to_dict()
    assert (changed["metadata"]["generation"], changed["status"]["observed_generation"]) == (2, 1)
    assert rollout_status(fake.deployment("staging", "shop", "checkout"))[0] == "Waiting for deployment spec update to be observed..."

    fake.tick()
    assert apps.read_namespaced_deployment_status("checkout", "shop").to_dict()["status"]["observed_generation"] == 2


# -- rollouts ---------------------------------------------------------------------------------


def test_template_change_creates_revision_2_and_rolls_out(fake: FakeKubernetesServer, apps: k8s.AppsV1Api, core: k8s.CoreV1Api) -> None:
    deployment = fake.deployment("staging", "shop", "checkout")
    apps.patch_namespaced_deployment("checkout", "shop", image_patch(IMAGE_V2), _content_type=SMP)

    fake.tick()
    revisions = replicasets_by_revision(fake)
    assert sorted(revisions) == ["1", "2"]
    new = revisions["2"]
    pod_hash = new["metadata"]["labels"]["pod-template-hash"]
    assert new["metadata"]["name"] == f"checkout-{pod_hash}"
    assert new["spec"]["selector"]["matchLabels"] == {"app": "checkout", "pod-template-hash": pod_hash}
    assert new["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": "checkout",
            "uid": deployment["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    mid = fake.deployment("staging", "shop", "checkout")
    assert mid["metadata"]["annotations"][REVISION] == "2"
    assert condition(mid, "Progressing")["reason"] in ("NewReplicaSetCreated", "ReplicaSetUpdated")
    assert 0 < mid["status"]["updatedReplicas"] < 4
    assert mid["status"]["replicas"] <= 5, "maxSurge 25% of 4 allows one extra pod"

    messages = tick_until_rolled_out(fake)
    assert messages[-1] == 'deployment "checkout" successfully rolled out'
    done = apps.read_namespaced_deployment("checkout", "shop").to_dict()["status"]
    counters = ("replicas", "updated_replicas", "ready_replicas", "available_replicas")
    assert [done[name] for name in counters] == [4, 4, 4, 4]
    assert done["unavailable_replicas"] is None, "zero counters are omitted like Go's omitempty"
    progressing = next(c for c in done["conditions"] if c["type"] == "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("True", "NewReplicaSetAvailable")
    assert progressing["message"] == f'ReplicaSet "checkout-{pod_hash}" has successfully progressed.'
    old = replicasets_by_revision(fake)["1"]
    assert old["spec"]["replicas"] == 0, "old ReplicaSets are kept, scaled to zero"
    pods = core.list_namespaced_pod("shop", label_selector=f"app=checkout,pod-template-hash={pod_hash}").to_dict()["items"]
    assert len(pods) == 4
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {IMAGE_V2}


def test_broken_image_crash_loops_and_exceeds_the_progress_deadline(
    fake: FakeKubernetesServer, apps: k8s.AppsV1Api, core: k8s.CoreV1Api
) -> None:
    patch = image_patch(BROKEN)
    patch["spec"]["progressDeadlineSeconds"] = 60  # six ticks of simulated time
    apps.patch_namespaced_deployment("checkout", "shop", patch, _content_type=SMP)

    fake.tick(4)
    assert condition(fake.deployment("staging", "shop", "checkout"), "Progressing")["status"] == "True"

    fake.tick(8)
    stuck = apps.read_namespaced_deployment("checkout", "shop").to_dict()["status"]["conditions"]
    progressing = next(c for c in stuck if c["type"] == "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("False", "ProgressDeadlineExceeded")
    assert progressing["message"].endswith("has timed out progressing.")
    available = next(c for c in stuck if c["type"] == "Available")
    assert available["status"] == "True", "old pods keep minimum availability"
    assert rollout_status(fake.deployment("staging", "shop", "checkout"))[0] == 'deployment "checkout" exceeded its progress deadline'

    pod_hash = replicasets_by_revision(fake)["2"]["metadata"]["labels"]["pod-template-hash"]
    broken = core.list_namespaced_pod("shop", label_selector=f"pod-template-hash={pod_hash}").to_dict()["items"]
    assert len(broken) == 2
    for pod in broken:
        statuses = {s["name"]: s for s in pod["status"]["container_statuses"]}
        assert statuses["checkout"]["ready"] is False
        assert statuses["checkout"]["restart_count"] >= 2
        assert statuses["checkout"]["state"]["waiting"]["reason"] == "CrashLoopBackOff"
        assert statuses["log-shipper"]["ready"] is True


def test_patching_back_to_revision_1_reuses_that_replicaset_as_revision_3(
    fake: FakeKubernetesServer, apps: k8s.AppsV1Api, api_client: k8s.ApiClient
) -> None:
    original_rs = replicasets_by_revision(fake)["1"]["metadata"]["name"]
    apps.patch_namespaced_deployment("checkout", "shop", image_patch(IMAGE_V2), _content_type=SMP)
    tick_until_rolled_out(fake)

    # What `kubectl rollout undo` sends: a JSON patch restoring the old RS template.
    rs = apps.read_namespaced_replica_set(original_rs, "shop")
    template = api_client.sanitize_for_serialization(rs).get("spec", {}).get("template")  # type: ignore[no-untyped-call]
    del template["metadata"]["labels"]["pod-template-hash"]
    ops = [{"op": "replace", "path": "/spec/template", "value": template}]
    apps.patch_namespaced_deployment("checkout", "shop", ops, _content_type=JSON_PATCH)
    tick_until_rolled_out(fake)

    revisions = replicasets_by_revision(fake)
    assert sorted(revisions) == ["2", "3"], "no new ReplicaSet: revision 1 was reused"
    reused = revisions["3"]
    assert reused["metadata"]["name"] == original_rs
    assert reused["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "1"
    assert reused["spec"]["replicas"] == 4
    assert revisions["2"]["spec"]["replicas"] == 0
    assert fake.deployment("staging", "shop", "checkout")["metadata"]["annotations"][REVISION] == "3"


def test_paused_deployment_does_not_roll_out_until_resumed(fake: FakeKubernetesServer, apps: k8s.AppsV1Api) -> None:
    patch = image_patch(IMAGE_V2)
    patch["spec"]["paused"] = True
    apps.patch_namespaced_deployment("checkout", "shop", patch, _content_type=SMP)
    fake.tick(3)

    paused = fake.deployment("staging", "shop", "checkout")
    assert len(fake.replicasets("staging", "shop")) == 1
    assert paused["status"]["observedGeneration"] == paused["metadata"]["generation"]
    assert (condition(paused, "Progressing")["status"], condition(paused, "Progressing")["reason"]) == ("Unknown", "DeploymentPaused")

    apps.patch_namespaced_deployment("checkout", "shop", {"spec": {"paused": None}}, _content_type=MERGE)
    tick_until_rolled_out(fake)
    assert sorted(replicasets_by_revision(fake)) == ["1", "2"]


def test_restarted_at_annotation_is_a_template_change(fake: FakeKubernetesServer, apps: k8s.AppsV1Api) -> None:
    restart = {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "2024-05-01T10:00:00Z"}}}}}
    apps.patch_namespaced_deployment("checkout", "shop", restart, _content_type=SMP)
    tick_until_rolled_out(fake)

    revisions = replicasets_by_revision(fake)
    assert sorted(revisions) == ["1", "2"]
    assert revisions["2"]["spec"]["template"]["metadata"]["annotations"] == {"kubectl.kubernetes.io/restartedAt": "2024-05-01T10:00:00Z"}


# -- scale, pods, lists -------------------------------------------------------------------


def test_scale_subresource_reads_patches_and_converges(fake: FakeKubernetesServer, apps: k8s.AppsV1Api, core: k8s.CoreV1Api) -> None:
    scale = apps.read_namespaced_deployment_scale("checkout", "shop")
    wire = scale.to_dict()
    assert (wire["kind"], wire["api_version"]) == ("Scale", "autoscaling/v1")
    assert (wire["spec"]["replicas"], wire["status"]["replicas"], wire["status"]["selector"]) == (4, 4, "app=checkout")

    scaled = apps.patch_namespaced_deployment_scale("checkout", "shop", {"spec": {"replicas": 6}}, _content_type=MERGE)
    assert scaled.to_dict()["spec"]["replicas"] == 6
    assert fake.deployment("staging", "shop", "checkout")["metadata"]["generation"] == 2

    fake.tick()
    assert len(core.list_namespaced_pod("shop", label_selector="app=checkout").to_dict()["items"]) == 6
    fake.tick()
    assert rollout_status(fake.deployment("staging", "shop", "checkout")) == ('deployment "checkout" successfully rolled out', True)
    assert len(fake.replicasets("staging", "shop")) == 1, "scaling is not a rollout"

    assert scale.spec is not None
    scale.spec.replicas = 2
    with pytest.raises(ApiException) as caught:
        apps.replace_namespaced_deployment_scale("checkout", "shop", scale)
    assert status_of(caught.value)["reason"] == "Conflict"

    with pytest.raises(ApiException) as caught:
        apps.patch_namespaced_deployment_scale("checkout", "shop", {"spec": {"replicas": -1}}, _content_type=MERGE)
    assert status_of(caught.value)["message"] == (
        'Scale.autoscaling "checkout" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0'
    )


def test_pods_are_listed_by_label_selector_with_restart_counts(core: k8s.CoreV1Api, apps: k8s.AppsV1Api) -> None:
    pods = core.list_namespaced_pod("shop", label_selector="app=checkout").to_dict()["items"]
    assert len(pods) == 4
    for pod in pods:
        assert pod["status"]["phase"] == "Running"
        assert [s["restart_count"] for s in pod["status"]["container_statuses"]] == [0, 0]
        assert all(s["ready"] for s in pod["status"]["container_statuses"])
        assert pod["metadata"]["owner_references"][0]["kind"] == "ReplicaSet"
    assert core.list_namespaced_pod("shop", label_selector="app in (checkout,cart),tier!=db").to_dict()["items"]
    assert core.list_namespaced_pod("shop", label_selector="app=cart").to_dict()["items"] == []

    replica_sets = apps.list_namespaced_replica_set("shop", label_selector="app=checkout").to_dict()["items"]
    assert [rs["status"]["ready_replicas"] for rs in replica_sets] == [4]
    one = core.read_namespaced_pod(pods[0]["metadata"]["name"], "shop").to_dict()
    assert one["metadata"]["uid"] == pods[0]["metadata"]["uid"]


def test_lists_filter_by_namespace_and_label_and_paginate(fake: FakeKubernetesServer, apps: k8s.AppsV1Api, core: k8s.CoreV1Api) -> None:
    fake.add_deployment(cluster="staging", namespace="web", name="cart", image=IMAGE_V1, replicas=1)
    fake.add_deployment(cluster="staging", namespace="web", name="search", image=IMAGE_V1, replicas=1)

    def names(listing: k8s.V1DeploymentList) -> list[str]:
        return [d["metadata"]["name"] for d in listing.to_dict()["items"]]

    everywhere = apps.list_deployment_for_all_namespaces().to_dict()["items"]
    assert [(d["metadata"]["namespace"], d["metadata"]["name"]) for d in everywhere] == [
        ("shop", "checkout"),
        ("web", "cart"),
        ("web", "search"),
    ]
    assert names(apps.list_deployment_for_all_namespaces(label_selector="app=cart")) == ["cart"]
    assert names(apps.list_namespaced_deployment("shop")) == ["checkout"]

    first = apps.list_namespaced_deployment("web", limit=1)
    assert names(first) == ["cart"]
    token = first.to_dict()["metadata"]["_continue"]
    assert names(apps.list_namespaced_deployment("web", limit=1, _continue=token)) == ["search"]

    namespaces = {ns["metadata"]["name"] for ns in core.list_namespace().to_dict()["items"]}
    assert {"default", "kube-system", "shop", "web"} <= namespaces


def test_delete_returns_success_status_and_garbage_collects(fake: FakeKubernetesServer, apps: k8s.AppsV1Api) -> None:
    status: Any = apps.delete_namespaced_deployment("checkout", "shop")  # v37 returns the raw JSON ("object")
    assert status["kind"] == "Status"
    assert (status["status"], status["details"]["name"], status["details"]["kind"]) == ("Success", "checkout", "deployments")

    with pytest.raises(ApiException) as caught:
        apps.read_namespaced_deployment("checkout", "shop")
    assert caught.value.status == 404
    fake.tick()
    assert fake.replicasets("staging", "shop") == []
    assert fake.pods("staging", "shop") == []


# -- clusters, faults, concurrency ---------------------------------------------------------


def test_two_contexts_are_independent_clusters(fake: FakeKubernetesServer, kubeconfig: Path) -> None:
    prod_client = _client(kubeconfig, "prod-eu")
    try:
        prod = k8s.AppsV1Api(prod_client)
        with pytest.raises(ApiException) as caught:
            prod.read_namespaced_deployment("checkout", "shop")
        assert caught.value.status == 404

        fake.add_deployment(cluster="prod-eu", namespace="shop", name="checkout", image=IMAGE_V1, replicas=2)
        prod.patch_namespaced_deployment("checkout", "shop", image_patch(IMAGE_V2), _content_type=SMP)
        tick_until_rolled_out(fake, cluster="prod-eu")
    finally:
        prod_client.close()  # type: ignore[no-untyped-call]

    assert fake.deployment("prod-eu", "shop", "checkout")["metadata"]["annotations"][REVISION] == "2"
    staging = fake.deployment("staging", "shop", "checkout")
    assert staging["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE_V1
    assert staging["metadata"]["annotations"][REVISION] == "1"


def test_injected_500_is_an_api_exception_once(fake: FakeKubernetesServer, apps: k8s.AppsV1Api) -> None:
    fake.inject_fault("500", method="GET", path_contains="/deployments/checkout")

    with pytest.raises(ApiException) as caught:
        apps.read_namespaced_deployment("checkout", "shop")
    assert (caught.value.status, status_of(caught.value)["reason"]) == (500, "InternalError")
    assert apps.read_namespaced_deployment("checkout", "shop").to_dict()["metadata"]["name"] == "checkout"


def test_injected_reset_on_patch_is_a_protocol_error_and_changes_nothing(fake: FakeKubernetesServer, apps: k8s.AppsV1Api) -> None:
    fake.inject_fault("reset", method="PATCH")

    with pytest.raises(urllib3.exceptions.ProtocolError):
        apps.patch_namespaced_deployment("checkout", "shop", image_patch(IMAGE_V2), _content_type=SMP)
    assert fake.deployment("staging", "shop", "checkout")["metadata"]["generation"] == 1


def test_injected_timeout_is_a_read_timeout_for_the_client(fake: FakeKubernetesServer, apps: k8s.AppsV1Api) -> None:
    fake.inject_fault("timeout", method="PATCH", hang_seconds=10)

    started = time.monotonic()
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        apps.patch_namespaced_deployment("checkout", "shop", image_patch(IMAGE_V2), _content_type=SMP, _request_timeout=0.3)
    assert time.monotonic() - started < 3


def test_a_fault_during_the_rollout_spares_the_plan_and_hits_after_the_first_real_patch(
    fake: FakeKubernetesServer, apps: k8s.AppsV1Api
) -> None:
    fake.inject_fault("500", method="GET", path_contains="/deployments/checkout", during_rollout=True)

    assert apps.read_namespaced_deployment("checkout", "shop").to_dict()["metadata"]["name"] == "checkout"
    apps.patch_namespaced_deployment("checkout", "shop", image_patch(IMAGE_V2), _content_type=SMP, dry_run="All")
    apps.patch_namespaced_deployment("checkout", "shop", image_patch(IMAGE_V2), _content_type=SMP)
    with pytest.raises(ApiException) as caught:
        apps.read_namespaced_deployment("checkout", "shop")
    assert caught.value.status == 500
    assert apps.read_namespaced_deployment("checkout", "shop").to_dict()["metadata"]["name"] == "checkout", "used up after one"


def test_default_client_silently_retries_idempotent_gets_after_a_reset(fake: FakeKubernetesServer, apps: k8s.AppsV1Api) -> None:
    """urllib3's default Retry(3) hides one reset on GET; four resets surface as MaxRetryError."""
    fake.clear_requests()
    fake.inject_fault("reset", method="GET", times=1)
    assert apps.read_namespaced_deployment("checkout", "shop").to_dict()["metadata"]["name"] == "checkout"
    assert len([r for r in fake.requests if r.method == "GET"]) == 2

    fake.inject_fault("reset", method="GET", times=4)
    with pytest.raises(urllib3.exceptions.MaxRetryError):
        apps.read_namespaced_deployment("checkout", "shop")


def test_concurrent_clients_are_served(fake: FakeKubernetesServer, kubeconfig: Path) -> None:
    errors: list[BaseException] = []

    def worker() -> None:
        api = _client(kubeconfig, "staging")
        try:
            apps = k8s.AppsV1Api(api)
            for _ in range(5):
                assert apps.read_namespaced_deployment("checkout", "shop").to_dict()["spec"]["replicas"] == 4
        except BaseException as error:  # surfaced below via the list
            errors.append(error)
        finally:
            api.close()  # type: ignore[no-untyped-call]

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    fake.tick(2)
    for thread in threads:
        thread.join(timeout=10)
    assert errors == []


def test_auto_tick_rolls_out_in_the_background(tmp_path: Path) -> None:
    with FakeKubernetesServer(tick_seconds=0.01, auto_tick=True) as server:
        server.add_deployment(cluster="staging", namespace="shop", name="checkout", image=IMAGE_V1, replicas=3)
        api = _client(server.write_kubeconfig(tmp_path / "kc", contexts=["staging"]), "staging")
        try:
            k8s.AppsV1Api(api).patch_namespaced_deployment("checkout", "shop", image_patch(IMAGE_V2), _content_type=SMP)
            deadline = time.monotonic() + 5
            while not rollout_status(server.deployment("staging", "shop", "checkout"))[1]:
                assert time.monotonic() < deadline, "background controller made no progress"
                time.sleep(0.02)
        finally:
            api.close()  # type: ignore[no-untyped-call]
    assert server.deployment("staging", "shop", "checkout")["metadata"]["annotations"][REVISION] == "2"
