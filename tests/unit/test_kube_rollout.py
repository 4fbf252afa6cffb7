"""The pure Kubernetes rollout logic, table-driven from kubectl's own tests.

``rollout_status`` cases come from TestDeploymentStatusViewerStatus in
staging/src/k8s.io/kubectl/pkg/polymorphichelpers/rollout_status_test.go (messages without
kubectl's trailing newline); rollback cases follow rollback.go's decisions.
"""

from __future__ import annotations

from typing import Any

import pytest

from bot.backends.images import split_image, with_tag
from bot.backends.kubernetes.rollout import (
    RollbackRefused,
    choose_rollback,
    pod_warning,
    rollout_status,
    selector_matches,
    selector_string,
    templates_equal,
)
from bot.backends.kubernetes.rollout_actions import SetImageArgs
from bot.backends.kubernetes.step_support import choose_container
from bot.errors import ActionFailed

UID = "8764ae47-9092-11e4-8393-42010af018ff"


def deployment(
    *,
    generation: int = 1,
    spec_replicas: int | None = 1,
    observed: int = 1,
    replicas: int = 0,
    updated: int = 0,
    available: int = 0,
    conditions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {} if spec_replicas is None else {"replicas": spec_replicas}
    return {
        "metadata": {"name": "foo", "namespace": "bar", "uid": UID, "generation": generation},
        "spec": spec,
        "status": {
            "observedGeneration": observed,
            "replicas": replicas,
            "updatedReplicas": updated,
            "availableReplicas": available,
            "conditions": conditions or [],
        },
    }


# (name, generation, spec replicas, observed, replicas, updated, available, message, done)
KUBECTL_STATUS_CASES = [
    ("test1", 0, 1, 1, 1, 0, 1, 'Waiting for deployment "foo" rollout to finish: 0 out of 1 new replicas have been updated...', False),
    ("test2", 1, 1, 1, 2, 1, 2, 'Waiting for deployment "foo" rollout to finish: 1 old replicas are pending termination...', False),
    ("test3", 1, 2, 1, 2, 2, 1, 'Waiting for deployment "foo" rollout to finish: 1 of 2 updated replicas are available...', False),
    ("test4", 1, 2, 1, 2, 2, 2, 'deployment "foo" successfully rolled out', True),
    ("test5", 2, 2, 1, 2, 2, 2, "Waiting for deployment spec update to be observed...", False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("generation", "spec_replicas", "observed", "replicas", "updated", "available", "message", "done"),
    [case[1:] for case in KUBECTL_STATUS_CASES],
    ids=[case[0] for case in KUBECTL_STATUS_CASES],
)
def test_rollout_status_matches_kubectl(
    generation: int, spec_replicas: int, observed: int, replicas: int, updated: int, available: int, message: str, done: bool
) -> None:
    obj = deployment(
        generation=generation, spec_replicas=spec_replicas, observed=observed,
        replicas=replicas, updated=updated, available=available,
    )  # fmt: skip

    status = rollout_status(obj)

    assert (status.message, status.done, status.failed) == (message, done, False)


def test_progress_deadline_exceeded_is_a_failure_with_the_condition_message() -> None:
    condition = {
        "type": "Progressing",
        "status": "False",
        "reason": "ProgressDeadlineExceeded",
        "message": 'ReplicaSet "foo-abc" has timed out progressing.',
    }
    obj = deployment(spec_replicas=2, replicas=3, updated=1, available=2, conditions=[condition])

    status = rollout_status(obj)

    assert status.failed and not status.done
    assert status.message == 'ReplicaSet "foo-abc" has timed out progressing'


def test_deadline_condition_is_ignored_until_the_spec_is_observed() -> None:
    condition = {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
    obj = deployment(generation=3, observed=2, conditions=[condition])

    assert rollout_status(obj) == rollout_status(deployment(generation=3, observed=2))
    assert not rollout_status(obj).failed


def test_progressing_condition_with_other_reason_is_not_a_failure() -> None:
    condition = {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}
    obj = deployment(spec_replicas=1, replicas=1, updated=1, available=1, conditions=[condition])

    assert rollout_status(obj).done


def test_missing_spec_replicas_skips_the_updated_check_like_a_nil_pointer() -> None:
    obj = deployment(spec_replicas=None, replicas=0, updated=0, available=0)

    assert rollout_status(obj).done


def test_waiting_message_gets_kubectls_pod_warning() -> None:
    pods = [
        {"status": {"containerStatuses": [{"state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}}]}}
    ]
    obj = deployment(spec_replicas=2, replicas=2, updated=1, available=1)

    status = rollout_status(obj, pods)

    assert status.message == (
        'Waiting for deployment "foo" rollout to finish: 1 out of 2 new replicas have been updated... '
        "(Warning: ImagePullBackOff - Back-off pulling image)"
    )


def test_unschedulable_pod_is_a_warning() -> None:
    pods = [{"status": {"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes"}]}}]
    assert pod_warning(pods) == "0/3 nodes"


# --------------------------------------------------------------------------- rollback


def template(image: str, pod_hash: str | None = None, **annotations: str) -> dict[str, Any]:
    labels = {"app": "foo"} | ({"pod-template-hash": pod_hash} if pod_hash else {})
    metadata: dict[str, Any] = {"labels": labels}
    if annotations:
        metadata["annotations"] = annotations
    return {"metadata": metadata, "spec": {"containers": [{"name": "foo", "image": image}]}}


def replicaset(
    revision: int, image: str, *, owner: str = UID, controller: bool = True, annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"foo-{revision}",
            "annotations": {"deployment.kubernetes.io/revision": str(revision), **(annotations or {})},
            "ownerReferences": [{"kind": "Deployment", "name": "foo", "uid": owner, "controller": controller}],
        },
        "spec": {"template": template(image, pod_hash=f"hash{revision}")},
    }


def rollout_deployment(image: str, revision: int, *, paused: bool = False) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "foo",
            "uid": UID,
            "annotations": {"deployment.kubernetes.io/revision": str(revision), "team": "shop"},
        },
        "spec": {"paused": paused, "selector": {"matchLabels": {"app": "foo"}}, "template": template(image)},
    }


HISTORY = [replicaset(1, "foo:1"), replicaset(2, "foo:2"), replicaset(3, "foo:3")]


@pytest.mark.parametrize(
    ("to_revision", "expected_revision", "expected_image"),
    [(None, 2, "foo:2"), (0, 2, "foo:2"), (1, 1, "foo:1"), (2, 2, "foo:2")],
    ids=["previous-by-default", "zero-means-previous", "explicit-1", "explicit-2"],
)
def test_choose_rollback_picks_revision(to_revision: int | None, expected_revision: int, expected_image: str) -> None:
    choice = choose_rollback(rollout_deployment("foo:3", 3), HISTORY, to_revision)

    assert choice.revision == expected_revision
    assert choice.current_revision == 3
    assert choice.template["spec"]["containers"][0]["image"] == expected_image
    assert not choice.already_current


def test_previous_is_the_highest_revision_below_the_current_one() -> None:
    history = [replicaset(5, "foo:5"), replicaset(2, "foo:2"), replicaset(7, "foo:7"), replicaset(4, "foo:4")]

    assert choose_rollback(rollout_deployment("foo:7", 7), history, None).revision == 5


def test_patch_drops_the_pod_template_hash_label_and_replaces_template_and_annotations() -> None:
    history = [replicaset(1, "foo:1", annotations={"kubernetes.io/change-cause": "deploy 1"}), replicaset(2, "foo:2")]

    choice = choose_rollback(rollout_deployment("foo:2", 2), history, None)

    assert choice.patch == [
        {"op": "replace", "path": "/spec/template", "value": template("foo:1")},
        {
            "op": "replace",
            "path": "/metadata/annotations",
            # the revision stays the Deployment's; other annotations come from the ReplicaSet
            "value": {"deployment.kubernetes.io/revision": "2", "kubernetes.io/change-cause": "deploy 1"},
        },
    ]
    assert "pod-template-hash" not in choice.template["metadata"]["labels"]


def test_explicit_revision_must_exist() -> None:
    with pytest.raises(RollbackRefused, match=r"^revision 9 not found; available: 1, 2, 3$"):
        choose_rollback(rollout_deployment("foo:3", 3), HISTORY, 9)


def test_negative_revision_is_refused_like_kubectl() -> None:
    with pytest.raises(RollbackRefused, match="unable to find specified revision -1"):
        choose_rollback(rollout_deployment("foo:3", 3), HISTORY, -1)


def test_no_history_is_refused() -> None:
    with pytest.raises(RollbackRefused, match='no rollout history found for deployment "foo"'):
        choose_rollback(rollout_deployment("foo:1", 1), [replicaset(1, "foo:1")], None)


def test_paused_deployment_is_refused() -> None:
    with pytest.raises(RollbackRefused, match="you cannot rollback a paused deployment"):
        choose_rollback(rollout_deployment("foo:3", 3, paused=True), HISTORY, None)


def test_replicasets_of_other_controllers_are_ignored() -> None:
    history = [
        replicaset(1, "foo:1", owner="someone-else"),
        replicaset(2, "foo:2", controller=False),
        replicaset(3, "foo:3"),
    ]

    with pytest.raises(RollbackRefused, match="no rollout history"):
        choose_rollback(rollout_deployment("foo:3", 3), history, None)


def test_already_at_that_template_is_reported_without_a_patch() -> None:
    choice = choose_rollback(rollout_deployment("foo:2", 3), HISTORY, 2)

    assert choice.already_current
    assert choice.patch == []


@pytest.mark.parametrize(
    ("first", "second", "equal"),
    [
        (template("a:1", pod_hash="x"), template("a:1"), True),
        (template("a:1", pod_hash="x"), template("a:1", pod_hash="y"), True),
        (template("a:1"), template("a:2"), False),
        (template("a:1", restartedAt="t1"), template("a:1", restartedAt="t2"), False),
        ({"metadata": {"creationTimestamp": None, "labels": {}}, "spec": {}}, {"spec": {"volumes": []}}, True),
    ],
    ids=["hash-ignored", "different-hashes", "different-image", "restart-annotation", "nil-vs-empty"],
)
def test_templates_equal_ignores_only_the_hash_and_nil_vs_empty(first: dict[str, Any], second: dict[str, Any], equal: bool) -> None:
    assert templates_equal(first, second) is equal


# --------------------------------------------------------------------------- selectors


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        ({"matchLabels": {"app": "foo"}}, {"app": "foo", "pod-template-hash": "x"}, True),
        ({"matchLabels": {"app": "foo"}}, {"app": "bar"}, False),
        ({}, {"anything": "x"}, True),
        (None, {"app": "foo"}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "api"]}]}, {"tier": "api"}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["web"]}]}, {}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, {"tier": ""}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, {"tier": "x"}, False),
    ],
)
def test_selector_matches(selector: dict[str, Any] | None, labels: dict[str, str], matches: bool) -> None:
    assert selector_matches(selector, labels) is matches


def test_selector_string() -> None:
    selector = {
        "matchLabels": {"b": "2", "a": "1"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["web", "api"]},
            {"key": "canary", "operator": "DoesNotExist"},
        ],
    }
    assert selector_string(selector) == "a=1,b=2,tier in (api,web),!canary"


# --------------------------------------------------------------------------- images


@pytest.mark.parametrize(
    ("image", "parts"),
    [
        ("checkout", ("checkout", None, None)),
        ("checkout:1.4.1", ("checkout", "1.4.1", None)),
        ("registry.example.com:5000/shop/checkout", ("registry.example.com:5000/shop/checkout", None, None)),
        ("registry.example.com:5000/shop/checkout:1.4.1", ("registry.example.com:5000/shop/checkout", "1.4.1", None)),
        ("checkout@sha256:" + "a" * 64, ("checkout", None, "sha256:" + "a" * 64)),
        ("host:5000/checkout:1.4@sha256:" + "b" * 64, ("host:5000/checkout", "1.4", "sha256:" + "b" * 64)),
    ],
)
def test_split_image(image: str, parts: tuple[str, str | None, str | None]) -> None:
    assert split_image(image) == parts


@pytest.mark.parametrize(
    ("image", "tag", "expected"),
    [
        ("checkout:1.4.1", "1.4.2", "checkout:1.4.2"),
        ("checkout", "1.4.2", "checkout:1.4.2"),
        ("host:5000/shop/checkout:1.4.1", "1.4.2", "host:5000/shop/checkout:1.4.2"),
        ("host:5000/checkout:1.4@sha256:" + "b" * 64, "1.5", "host:5000/checkout:1.5"),
        ("checkout:1.4.1", "sha256:" + "c" * 64, "checkout@sha256:" + "c" * 64),
    ],
)
def test_with_tag_keeps_the_repository(image: str, tag: str, expected: str) -> None:
    assert with_tag(image, tag) == expected


@pytest.mark.parametrize(
    "args",
    [{}, {"tag": "1.2", "image": "x:1.2"}, {"tag": "bad tag"}, {"image": "has space:1"}, {"tag": None, "image": None}],
)
def test_set_image_args_need_exactly_one_valid_of_tag_or_image(args: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SetImageArgs.model_validate(args)


def test_choose_container() -> None:
    assert choose_container({"web": "a:1"}, None, "deployment shop/x") == "web"
    assert choose_container({"web": "a:1", "proxy": "b:1"}, "proxy", "deployment shop/x") == "proxy"
    with pytest.raises(ActionFailed, match=r"several containers \(web, proxy\)"):
        choose_container({"web": "a:1", "proxy": "b:1"}, None, "deployment shop/x")
    with pytest.raises(ActionFailed, match="no container db in deployment shop/x; containers: web"):
        choose_container({"web": "a:1"}, "db", "deployment shop/x")


# --------------------------------------------------------------------------- edges the mutation run found untested


def test_a_spec_not_yet_observed_still_shows_the_pod_warning() -> None:
    pods = [{"status": {"containerStatuses": [{"state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m"}}}]}}]
    status = rollout_status(deployment(generation=2, observed=1), pods)
    assert status.message == "Waiting for deployment spec update to be observed... (Warning: CrashLoopBackOff - back-off 5m)"


def test_a_deadline_without_a_message_names_the_deployment() -> None:
    condition = {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
    status = rollout_status(deployment(spec_replicas=2, replicas=2, updated=1, conditions=[condition]))
    assert (status.done, status.failed) == (False, True)
    assert status.message == 'deployment "foo" exceeded its progress deadline'


def test_only_the_final_period_of_the_deadline_message_is_dropped() -> None:
    condition = {"type": "Progressing", "reason": "ProgressDeadlineExceeded", "message": "Deadline exceeded for ReplicaSet foo-X."}
    assert rollout_status(deployment(conditions=[condition])).message == "Deadline exceeded for ReplicaSet foo-X"


@pytest.mark.parametrize(
    ("condition", "warning"),
    [
        ({"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}, "Unschedulable"),
        ({"type": "PodScheduled", "status": "True", "reason": "Unschedulable", "message": "scheduled after all"}, None),
        ({"type": "Ready", "status": "False", "reason": "Unschedulable", "message": "not the scheduling condition"}, None),
        ({"type": "PodScheduled", "status": "False", "reason": "SchedulingGated", "message": "gated"}, None),
    ],
)
def test_only_an_unschedulable_pod_scheduled_condition_is_a_warning(condition: dict[str, str], warning: str | None) -> None:
    assert pod_warning([{"status": {"conditions": [condition]}}]) == warning


@pytest.mark.parametrize(
    ("waiting", "warning"),
    [
        ({"reason": "ImagePullBackOff"}, "ImagePullBackOff"),
        ({"reason": "ErrImagePull", "message": "manifest unknown: shop:1.4.3-RC-X"}, "ErrImagePull - manifest unknown: shop:1.4.3-RC-X"),
        ({"reason": "ContainerCreating", "message": "pulling"}, None),
    ],
)
def test_a_waiting_container_warning_is_its_reason_and_message(waiting: dict[str, str], warning: str | None) -> None:
    assert pod_warning([{"status": {"containerStatuses": [{"state": {"waiting": waiting}}]}}]) == warning


@pytest.mark.parametrize(
    ("expression", "labels", "matches"),
    [
        ({"key": "tier", "operator": "In", "values": ["web"]}, {"tier": "db"}, False),
        ({"key": "tier", "operator": "NotIn", "values": ["web"]}, {"tier": "api"}, True),
        ({"key": "tier", "operator": "NotIn", "values": ["web"]}, {"tier": "web"}, False),
        ({"key": "tier", "operator": "DoesNotExist"}, {}, True),
        ({"key": "tier", "operator": "Exists"}, {}, False),
        ({"key": "tier", "operator": "Gt", "values": ["1"]}, {"tier": "2"}, False),
    ],
)
def test_each_selector_operator(expression: dict[str, Any], labels: dict[str, str], matches: bool) -> None:
    assert selector_matches({"matchExpressions": [expression]}, labels) is matches


def test_selector_string_of_every_operator_and_of_nothing() -> None:
    expressions = [
        {"key": "tier", "operator": "NotIn", "values": ["web", "api"]},
        {"key": "canary", "operator": "Exists"},
    ]
    assert selector_string({"matchExpressions": expressions}) == "tier notin (api,web),canary"
    assert selector_string(None) == ""
    assert selector_string({}) == ""


def test_previous_is_counted_from_the_deployments_own_revision() -> None:
    # kubectl reads the Deployment's revision annotation, not the newest ReplicaSet's.
    assert choose_rollback(rollout_deployment("foo:2", 2), HISTORY, None).revision == 1


def test_a_deployment_without_a_revision_counts_from_its_newest_replicaset() -> None:
    unannotated = rollout_deployment("foo:3", 3)
    del unannotated["metadata"]["annotations"]
    choice = choose_rollback(unannotated, HISTORY, None)
    assert (choice.revision, choice.current_revision, choice.replicaset) == (2, 3, "foo-2")
    assert choice.patch[1] == {"op": "add", "path": "/metadata/annotations", "value": {}}, "JSON patch cannot replace a missing path"


def test_the_choice_names_the_replicaset_and_the_annotations_and_leaves_the_history_untouched() -> None:
    history = [replicaset(1, "foo:1", annotations={"kubernetes.io/change-cause": "deploy 1"}), replicaset(2, "foo:2")]
    choice = choose_rollback(rollout_deployment("foo:2", 2), history, None)
    assert choice.replicaset == "foo-1"
    assert choice.annotations == {"deployment.kubernetes.io/revision": "2", "kubernetes.io/change-cause": "deploy 1"}
    assert history[0]["spec"]["template"]["metadata"]["labels"] == {"app": "foo", "pod-template-hash": "hash1"}


def test_a_paused_deployment_is_refused_with_kubectls_words() -> None:
    with pytest.raises(RollbackRefused) as refused:
        choose_rollback(rollout_deployment("foo:3", 3, paused=True), HISTORY, None)
    assert str(refused.value) == (
        "you cannot rollback a paused deployment; resume it first with 'kubectl rollout resume deployment/foo' and try again"
    )


def test_an_explicit_revision_without_any_history_says_none_are_available() -> None:
    with pytest.raises(RollbackRefused, match=r"^revision 4 not found; available: none$"):
        choose_rollback(rollout_deployment("foo:3", 3), [], 4)


def test_a_deployment_with_no_status_yet_waits_for_its_spec_to_be_observed() -> None:
    fresh = {"metadata": {"name": "foo", "generation": 1}, "spec": {"replicas": 1}}
    assert rollout_status(fresh).message == "Waiting for deployment spec update to be observed..."


@pytest.mark.parametrize(
    ("replicas", "updated", "available", "message"),
    [
        (3, 2, 2, 'Waiting for deployment "foo" rollout to finish: 1 old replicas are pending termination...'),
        (2, 2, 1, 'Waiting for deployment "foo" rollout to finish: 1 of 2 updated replicas are available...'),
    ],
)
def test_every_waiting_message_carries_the_pod_warning(replicas: int, updated: int, available: int, message: str) -> None:
    pods = [{"status": {"containerStatuses": [{"state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}]
    status = rollout_status(deployment(spec_replicas=2, replicas=replicas, updated=updated, available=available), pods)
    assert status.message == f"{message} (Warning: CrashLoopBackOff)"
