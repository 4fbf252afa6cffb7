"""The versions a form suggests come from the target's own history: a Deployment's ReplicaSets, an ECS family's revisions."""

from __future__ import annotations

import functools
import logging
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from bot.backends import Backends
from bot.catalog.config import EcsTarget, Environment, GitopsTarget, KubernetesTarget, OpsbotConfig, Service
from bot.settings import Settings
from fakes.kubernetes import FakeKubernetesServer
from tests.integration.gitops_support import KUSTOMIZATION, make_origin
from tests.integration.slack_support import wait_until

REGION = "eu-west-1"


def config_with(**access: Any) -> OpsbotConfig:
    """A one-service config (the schema wants one) with the given cluster or AWS access."""
    target = {"kubernetes": {"context": "prod", "namespace": "shop", "deployment": "checkout"}}
    return OpsbotConfig.model_validate({"services": {"checkout": {"environments": {"production": target}}}, **access})


def test_a_deployments_replicasets_suggest_its_past_images_newest_first(tmp_path: Path) -> None:
    with FakeKubernetesServer(tick_seconds=0.05) as kube:
        kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig", contexts=["prod"])
        kube.add_deployment(
            cluster="prod", namespace="shop", name="checkout", image="registry.example.com/shop/checkout:1.4.0", container="checkout"
        )
        backends = Backends(config_with(kubernetes={"kubeconfig": str(kubeconfig)}))
        target = KubernetesTarget(context="prod", namespace="shop", deployment="checkout", container="checkout")
        api = backends.kubernetes.for_target(target)
        for count, tag in enumerate(("1.4.1", "1.4.2"), start=2):
            image = {
                "spec": {"template": {"spec": {"containers": [{"name": "checkout", "image": f"registry.example.com/shop/checkout:{tag}"}]}}}
            }
            api.patch_deployment("shop", "checkout", image, patch_type="strategic")
            # The controller makes a ReplicaSet per template it sees, as a real one does: let it see each.
            wait_until(functools.partial(has_replicasets, kube, count), what=f"the ReplicaSet of {tag}")

        assert backends.versions.suggest("checkout", "production", target) == ["1.4.2", "1.4.1", "1.4.0"]


def has_replicasets(kube: FakeKubernetesServer, count: int) -> bool:
    return len(kube.replicasets("prod", "shop")) >= count


def test_a_missing_deployment_costs_the_suggestions_not_the_form(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with FakeKubernetesServer(tick_seconds=0.05) as kube:
        kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig", contexts=["prod"])
        backends = Backends(config_with(kubernetes={"kubeconfig": str(kubeconfig)}))
        target = KubernetesTarget(context="prod", namespace="shop", deployment="gone")

        with caplog.at_level(logging.WARNING):
            assert backends.versions.suggest("checkout", "production", target) == []
        assert "no version suggestions for checkout/production" in caplog.text


@pytest.fixture
def moto_url() -> Iterator[str]:
    with pytest.MonkeyPatch.context() as env:
        for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"), ("AWS_DEFAULT_REGION", REGION)):
            env.setenv(name, value)
        env.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")
        for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_ECS"):
            env.delenv(name, raising=False)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        try:
            yield f"http://{host}:{port}"
        finally:
            server.stop()
            urllib.request.urlcleanup()


def test_an_ecs_familys_revisions_suggest_the_deployed_containers_tags(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    ecs: Any = boto3.client("ecs", endpoint_url=moto_url, region_name=REGION)
    ecs.create_cluster(clusterName="prod")
    for tag in ("2.0.0", "2.1.0", "2.2.0"):
        ecs.register_task_definition(
            family="billing", cpu="256", memory="512", networkMode="awsvpc", requiresCompatibilities=["FARGATE"],
            containerDefinitions=[
                {"name": "web", "image": f"registry.example.com/billing:{tag}", "essential": True},
                {"name": "envoy", "image": "envoyproxy/envoy:v1.30.1", "essential": False},
            ],
        )  # fmt: skip
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "1")
    ecs.create_service(cluster="prod", serviceName="billing", taskDefinition="billing:3", desiredCount=1)
    backends = Backends(config_with(aws={"endpoint_url": moto_url}))
    target = EcsTarget(region=REGION, cluster="prod", service="billing", container="web")

    assert backends.versions.suggest("billing", "production", target) == ["2.2.0", "2.1.0", "2.0.0"]


def test_a_gitops_files_history_suggests_the_tags_it_held_newest_first(tmp_path: Path) -> None:
    path = "apps/checkout/production/kustomization.yaml"
    origin = make_origin(tmp_path, {path: KUSTOMIZATION})
    origin.colleague_pushes(path, KUSTOMIZATION.replace('newTag: "1.4.1"', 'newTag: "1.4.2"'), "deploy 1.4.2")
    origin.colleague_pushes(path + ".bak", "not yaml: [", "an unrelated file")
    target = GitopsTarget(repo=origin.url, branch="main", path=path, kustomize_image="registry.example.com/shop/checkout")
    config = OpsbotConfig(services={"checkout": Service(environments={"production": Environment(gitops=target)})})
    backends = Backends(config, Settings(OPSBOT_GIT_CACHE_DIR=tmp_path / "cache"))
    try:
        assert backends.versions.suggest("checkout", "production", target) == ["1.4.2", "1.4.1"]
    finally:
        backends.gitops.close()
