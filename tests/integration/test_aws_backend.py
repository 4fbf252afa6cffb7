"""The AWS backend against moto's server over real HTTP, as opsbot would talk to AWS.

boto3 reaches ``moto.server.ThreadedMotoServer`` (on a free port) through
``AwsAccess.endpoint_url`` or ``AWS_ENDPOINT_URL``; the credentials are dummies in the
environment. What moto can show here: task definition registration and copies, service
updates, desired counts, Auto Scaling capacity, not-found errors, STS AssumeRole with the
session name, and IAM enforcement (``/moto-api/reset-auth``) for AccessDenied.

What moto cannot show: moto does not simulate ECS rollouts over time (a deployment never
moves from IN_PROGRESS to COMPLETED, and there is no circuit breaker), so services are
created with ``MOTO_ECS_SERVICE_RUNNING`` = desired count and report a completed rollout at
once; the waiting logic is tested on recorded sequences in
``tests/unit/test_ecs_rollout.py``. moto's IAM errors come back as XML even to JSON clients,
so a tiny local stub serves the exact ``AccessDeniedException``/``ThrottlingException``
bodies ECS sends.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from bot.backends import Backends
from bot.backends.aws import AwsBackend
from bot.backends.aws.asg_actions import AsgScale, AsgScaleArgs, AsgStatus, AsgStatusArgs
from bot.backends.aws.ecs_actions import (
    EcsDeploy,
    EcsDeployArgs,
    EcsRollback,
    EcsRollbackAction,
    EcsRollbackArgs,
    EcsScale,
    EcsScaleArgs,
    EcsStatus,
    EcsStatusArgs,
)
from bot.backends.aws.session import Actor, AwsPlace, AwsSessions, role_session_name
from bot.catalog.actions import StepContext
from bot.catalog.config import AsgTarget, AwsAccess, EcsTarget, Environment, OpsbotConfig, Service
from bot.catalog.registry import build_registry
from bot.errors import ActionFailed, TemporaryActionError
from bot.service_health import TargetRef

if TYPE_CHECKING:
    from mypy_boto3_autoscaling.client import AutoScalingClient
    from mypy_boto3_ecs.client import ECSClient

IAMClient = Any
"""boto3-stubs[iam] is not installed; IAM is only used to set up users and roles here."""

REGION = "eu-west-1"
ACCOUNT = "123456789012"
CLUSTER = "payments-prod"
REPOSITORY = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/checkout"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/opsbot-deployer"

WEB = {
    "name": "web",
    "image": f"{REPOSITORY}:1.4.1",
    "cpu": 256,
    "memory": 512,
    "essential": True,
    "portMappings": [{"containerPort": 8080, "hostPort": 8080, "protocol": "tcp"}],
    "environment": [{"name": "LOG_LEVEL", "value": "info"}],
    "command": ["serve", "--port", "8080"],
}
ENVOY = {"name": "envoy", "image": "envoyproxy/envoy:v1.30.1", "cpu": 64, "memory": 128, "essential": False}


# --- fixtures --------------------------------------------------------------------------


@pytest.fixture
def url(moto_url: str) -> str:
    """The server, emptied before each test."""
    _post(f"{moto_url}/moto-api/reset", b"")
    return moto_url


@pytest.fixture
def ecs(url: str) -> ECSClient:
    """An admin client to set up and inspect what the backend did (not the code under test)."""
    return boto3.client("ecs", endpoint_url=url, region_name=REGION)


@pytest.fixture
def autoscaling(url: str) -> AutoScalingClient:
    return boto3.client("autoscaling", endpoint_url=url, region_name=REGION)


@pytest.fixture
def iam(url: str) -> IAMClient:
    return boto3.client("iam", endpoint_url=url, region_name=REGION)


@pytest.fixture
def checkout(ecs: ECSClient, monkeypatch: pytest.MonkeyPatch) -> EcsTarget:
    """checkout on checkout:1 (web + envoy), 2 tasks, in cluster payments-prod."""
    ecs.create_cluster(clusterName=CLUSTER)
    register(ecs, "checkout", WEB, ENVOY)
    create_service(ecs, monkeypatch, "checkout", "checkout:1", desired=2)
    return EcsTarget(region=REGION, cluster=CLUSTER, service="checkout", container="web")


@pytest.fixture
def workers(autoscaling: AutoScalingClient) -> AsgTarget:
    """workers-prod: min 2, max 10, desired 3."""
    autoscaling.create_launch_configuration(LaunchConfigurationName="workers", ImageId="ami-12c6146b", InstanceType="t3.micro")
    create_group(autoscaling, "workers-prod", desired=3)
    return AsgTarget(region=REGION, name="workers-prod")


# --- helpers ---------------------------------------------------------------------------


def _post(address: str, body: bytes) -> None:
    request = urllib.request.Request(address, data=body, method="POST", headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def register(ecs: ECSClient, family: str, *containers: dict[str, Any]) -> str:
    response = ecs.register_task_definition(
        family=family,
        containerDefinitions=list(containers),  # type: ignore[arg-type]
        cpu="512",
        memory="1024",
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        tags=[{"key": "team", "value": "payments"}],
    )
    return response["taskDefinition"]["taskDefinitionArn"]


def create_service(ecs: ECSClient, monkeypatch: pytest.MonkeyPatch, name: str, task: str, *, desired: int) -> None:
    # moto fixes a service's running count at creation; make it report a finished rollout.
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", str(desired))
    ecs.create_service(cluster=CLUSTER, serviceName=name, taskDefinition=task, desiredCount=desired)


def create_group(autoscaling: AutoScalingClient, name: str, *, desired: int) -> None:
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=name,
        LaunchConfigurationName="workers",
        MinSize=2,
        MaxSize=10,
        DesiredCapacity=desired,
        AvailabilityZones=[f"{REGION}a"],
    )


def step_context(
    endpoint: str | None,
    target: EcsTarget | AsgTarget,
    *,
    actor: tuple[str, str] = ("U0123ABC", "alice"),
    max_attempts: int = 2,
) -> tuple[StepContext, list[str]]:
    """A runner-like context for ``target`` whose backends talk to ``endpoint``."""
    environment = Environment(ecs=target) if isinstance(target, EcsTarget) else Environment(asg=target)
    config = OpsbotConfig(
        services={"checkout": Service(environments={"production": environment})},
        aws=AwsAccess(endpoint_url=endpoint, max_attempts=max_attempts),
    )
    progress: list[str] = []
    context = StepContext(
        request_id=7,
        service="checkout",
        env="production",
        target=target,
        actor_id=actor[0],
        actor_name=actor[1],
        backends=Backends(config),
        progress=progress.append,
        cancel_event=threading.Event(),
        deadline=time.monotonic() + 30,
    )
    return context, progress


def service_of(ecs: ECSClient, name: str = "checkout") -> dict[str, Any]:
    return dict(ecs.describe_services(cluster=CLUSTER, services=[name])["services"][0])


def containers_of(ecs: ECSClient, task_definition: str) -> dict[str, dict[str, Any]]:
    definition = ecs.describe_task_definition(taskDefinition=task_definition)["taskDefinition"]
    return {c["name"]: dict(c) for c in definition.get("containerDefinitions", [])}


def ecs_state(ecs: ECSClient) -> tuple[str, int, list[str]]:
    service = service_of(ecs)
    arns = ecs.list_task_definitions(familyPrefix="checkout")["taskDefinitionArns"]
    return service["taskDefinition"], service["desiredCount"], arns


def short(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


@contextmanager
def iam_enforced(url: str) -> Iterator[None]:
    """moto checks signatures and IAM policies for every request inside the block."""
    _post(f"{url}/moto-api/reset-auth", b"0")
    try:
        yield
    finally:
        _post(f"{url}/moto-api/reset-auth", b"inf")


def iam_user(iam: IAMClient, name: str, actions: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Create an IAM user allowed ``actions`` and make its keys the process's credentials."""
    iam.create_user(UserName=name)
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}
    iam.put_user_policy(UserName=name, PolicyName="opsbot", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])


class StubAws:
    """A local endpoint answering every request with one canned AWS error, counting requests."""

    def __init__(self, status: int, body: bytes, content_type: str = "application/x-amz-json-1.1") -> None:
        self.requests = 0
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                stub.requests += 1
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("x-amzn-RequestId", f"stub-{stub.requests}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """Keep test output quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @classmethod
    def json_error(cls, error_type: str, message: str, status: int = 400) -> StubAws:
        """An error as JSON-protocol services (ECS) send it."""
        return cls(status, json.dumps({"__type": error_type, "message": message}).encode())

    @classmethod
    def query_error(cls, code: str, message: str, status: int = 400) -> StubAws:
        """An error as query-protocol services (Auto Scaling) send it."""
        body = (
            "<ErrorResponse><Error><Type>Sender</Type>"
            f"<Code>{code}</Code><Message>{message}</Message></Error>"
            "<RequestId>stub</RequestId></ErrorResponse>"
        )
        return cls(status, body.encode(), content_type="text/xml")

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> StubAws:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


# --- ecs.deploy ------------------------------------------------------------------------


def test_deploy_registers_a_new_revision_with_the_new_tag_and_points_the_service_at_it(
    url: str, ecs: ECSClient, checkout: EcsTarget
) -> None:
    context, progress = step_context(url, checkout)

    result = EcsDeploy().run(context, EcsDeployArgs(tag="1.4.2", poll_seconds=0.01))

    service = service_of(ecs)
    assert short(service["taskDefinition"]) == "checkout:2"
    before, after = containers_of(ecs, "checkout:1"), containers_of(ecs, "checkout:2")
    assert after["web"]["image"] == f"{REPOSITORY}:1.4.2"
    assert {**after["web"], "image": None} == {**before["web"], "image": None}
    assert after["envoy"] == before["envoy"]
    new = ecs.describe_task_definition(taskDefinition="checkout:2", include=["TAGS"])
    assert (new["taskDefinition"]["cpu"], new["taskDefinition"]["memory"]) == ("512", "1024")
    assert new["taskDefinition"].get("requiresCompatibilities") == ["FARGATE"]
    assert new["tags"] == [{"key": "team", "value": "payments"}]
    assert result.summary == f"deployed {REPOSITORY}:1.4.2 to checkout: checkout:1 → checkout:2, 2/2 tasks running"
    assert progress == [f"registered checkout:2 (web: {REPOSITORY}:1.4.2)"]


def test_deploy_plan_predicts_the_revision_and_image_and_changes_nothing(url: str, ecs: ECSClient, checkout: EcsTarget) -> None:
    context, _ = step_context(url, checkout)
    before = ecs_state(ecs)

    plan = EcsDeploy().plan(context, EcsDeployArgs(tag="1.4.2"))

    assert [change.render() for change in plan] == [
        "task definition checkout:1 → checkout:2",
        f"image of web {REPOSITORY}:1.4.1 → {REPOSITORY}:1.4.2",
    ]
    assert ecs_state(ecs) == before


def test_deploy_of_a_full_image_to_a_named_container(url: str, ecs: ECSClient, checkout: EcsTarget) -> None:
    context, _ = step_context(url, checkout.model_copy(update={"container": None}))

    EcsDeploy().run(context, EcsDeployArgs(image="envoyproxy/envoy:v1.31.0", container="envoy", wait=False))

    after = containers_of(ecs, service_of(ecs)["taskDefinition"])
    assert after["envoy"]["image"] == "envoyproxy/envoy:v1.31.0"
    assert after["web"]["image"] == f"{REPOSITORY}:1.4.1"


def test_deploy_without_a_container_in_a_multi_container_task_lists_the_containers(url: str, ecs: ECSClient, checkout: EcsTarget) -> None:
    context, _ = step_context(url, checkout.model_copy(update={"container": None}))

    with pytest.raises(ActionFailed) as failure:
        EcsDeploy().plan(context, EcsDeployArgs(tag="1.4.2"))

    assert "several containers (web, envoy)" in failure.value.user_message


def test_deploy_args_need_exactly_one_of_tag_or_image() -> None:
    with pytest.raises(ValueError, match="exactly one of tag or image"):
        EcsDeployArgs(tag="1.4.2", image=f"{REPOSITORY}:1.4.2")
    with pytest.raises(ValueError, match="exactly one of tag or image"):
        EcsDeployArgs()


# --- ecs.scale / ecs.status ------------------------------------------------------------


def test_scale_changes_the_desired_count_and_its_plan_changes_nothing(url: str, ecs: ECSClient, checkout: EcsTarget) -> None:
    context, _ = step_context(url, checkout)
    before = ecs_state(ecs)

    plan = EcsScale().plan(context, EcsScaleArgs(count=6))
    assert ecs_state(ecs) == before
    result = EcsScale().run(context, EcsScaleArgs(count=6, poll_seconds=0.01))

    assert [change.render() for change in plan] == ["desired count 2 → 6"]
    assert service_of(ecs)["desiredCount"] == 6
    assert result.summary.startswith("scaled checkout: desired count 2 → 6")


def test_status_shows_deployments_task_definition_and_images(url: str, checkout: EcsTarget) -> None:
    context, _ = step_context(url, checkout)

    result = EcsStatus().run(context, EcsStatusArgs())

    assert result.summary == "checkout (payments-prod, eu-west-1): 2/2 tasks running on checkout:1; steady"
    assert result.details[:3] == (
        "task definition checkout:1",
        f"container web: {REPOSITORY}:1.4.1",
        "container envoy: envoyproxy/envoy:v1.30.1",
    )
    assert result.details[3] == "PRIMARY checkout:1 COMPLETED: 2/2 running, 0 pending"


# --- ecs.rollback and on_failure: rollback -----------------------------------------------


def test_rollback_returns_to_the_previous_active_revision(url: str, ecs: ECSClient, checkout: EcsTarget) -> None:
    register(ecs, "checkout", {**WEB, "image": f"{REPOSITORY}:1.4.2"}, ENVOY)
    register(ecs, "checkout", {**WEB, "image": f"{REPOSITORY}:1.4.3"}, ENVOY)
    ecs.update_service(cluster=CLUSTER, service="checkout", taskDefinition="checkout:3")
    context, _ = step_context(url, checkout)
    before = ecs_state(ecs)

    plan = EcsRollbackAction().plan(context, EcsRollbackArgs())
    assert ecs_state(ecs) == before
    result = EcsRollbackAction().run(context, EcsRollbackArgs(poll_seconds=0.01))

    assert [change.render() for change in plan] == [
        "task definition checkout:3 → checkout:2",
        f"image of web {REPOSITORY}:1.4.3 → {REPOSITORY}:1.4.2",
    ]
    assert short(service_of(ecs)["taskDefinition"]) == "checkout:2"
    assert result.summary.startswith("rolled checkout back: checkout:3 → checkout:2")


def test_rollback_to_a_given_revision_and_to_a_missing_one(url: str, ecs: ECSClient, checkout: EcsTarget) -> None:
    register(ecs, "checkout", {**WEB, "image": f"{REPOSITORY}:1.4.2"}, ENVOY)
    ecs.update_service(cluster=CLUSTER, service="checkout", taskDefinition="checkout:2")
    context, _ = step_context(url, checkout)

    with pytest.raises(ActionFailed) as failure:
        EcsRollbackAction().plan(context, EcsRollbackArgs(to_revision=7))
    EcsRollbackAction().run(context, EcsRollbackArgs(to_revision=1, wait=False))

    assert failure.value.user_message == "checkout:7 is not an ACTIVE revision; ACTIVE revisions of checkout: 1, 2"
    assert short(service_of(ecs)["taskDefinition"]) == "checkout:1"


def test_rollback_with_no_earlier_revision_says_so(url: str, checkout: EcsTarget) -> None:
    context, _ = step_context(url, checkout)

    with pytest.raises(ActionFailed, match="no ACTIVE revision of checkout below checkout:1"):
        EcsRollbackAction().plan(context, EcsRollbackArgs())


def test_captured_task_definition_is_restored_after_a_deploy(url: str, ecs: ECSClient, checkout: EcsTarget) -> None:
    context, _ = step_context(url, checkout)
    support = build_registry(["bot.backends.aws.actions"]).rollback_for("ecs")
    assert isinstance(support, EcsRollback)

    point = json.loads(json.dumps(support.capture(context)))
    EcsDeploy().run(context, EcsDeployArgs(tag="1.4.2", wait=False))
    assert short(service_of(ecs)["taskDefinition"]) == "checkout:2"
    result = support.restore(context, point)

    assert short(service_of(ecs)["taskDefinition"]) == "checkout:1"
    assert result.summary.startswith("restored checkout to checkout:1 (checkout:2 → checkout:1)")


# --- asg.scale / asg.status -------------------------------------------------------------


def test_asg_scale_sets_desired_capacity_and_its_plan_changes_nothing(url: str, autoscaling: AutoScalingClient, workers: AsgTarget) -> None:
    context, _ = step_context(url, workers)

    plan = AsgScale().plan(context, AsgScaleArgs(capacity=5))
    desired_after_plan = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["workers-prod"])
    AsgScale().run(context, AsgScaleArgs(capacity=5))

    assert [change.render() for change in plan] == ["desired capacity 3 → 5 (min 2, max 10)"]
    assert desired_after_plan["AutoScalingGroups"][0]["DesiredCapacity"] == 3
    group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["workers-prod"])["AutoScalingGroups"][0]
    assert group["DesiredCapacity"] == 5


def test_asg_scale_outside_min_max_is_refused_naming_the_range(url: str, autoscaling: AutoScalingClient, workers: AsgTarget) -> None:
    context, _ = step_context(url, workers)
    expected = "workers-prod (eu-west-1) takes 2–10 instances; 12 is outside that range"

    with pytest.raises(ActionFailed) as planned:
        AsgScale().plan(context, AsgScaleArgs(capacity=12))
    with pytest.raises(ActionFailed) as ran:
        AsgScale().run(context, AsgScaleArgs(capacity=12))

    assert planned.value.user_message == ran.value.user_message == expected
    group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["workers-prod"])["AutoScalingGroups"][0]
    assert group["DesiredCapacity"] == 3


def test_asg_status_counts_instances_by_lifecycle_state_and_health(url: str, workers: AsgTarget) -> None:
    context, _ = step_context(url, workers)

    result = AsgStatus().run(context, AsgStatusArgs())

    assert result.summary == "workers-prod (eu-west-1): desired 3 (min 2, max 10), 3 in service, 3 healthy"
    assert result.details == ("InService: 3", "Healthy: 3", "launches from workers")


# --- errors users see ------------------------------------------------------------------


def test_missing_cluster_names_cluster_service_and_region(url: str, checkout: EcsTarget) -> None:
    context, _ = step_context(url, checkout.model_copy(update={"cluster": "payments-staging"}))

    with pytest.raises(ActionFailed) as failure:
        EcsStatus().run(context, EcsStatusArgs())

    assert not failure.value.temporary
    assert failure.value.user_message.startswith("ECS cluster payments-staging was not found in eu-west-1 (looking for service checkout)")


def test_missing_service_names_service_cluster_and_region(url: str, checkout: EcsTarget) -> None:
    context, _ = step_context(url, checkout.model_copy(update={"service": "checkout-v2"}))

    with pytest.raises(ActionFailed) as failure:
        EcsDeploy().plan(context, EcsDeployArgs(tag="1.4.2"))

    assert failure.value.user_message.startswith("ECS service checkout-v2 was not found in cluster payments-prod (eu-west-1)")


def test_missing_auto_scaling_group_names_group_and_region(url: str, workers: AsgTarget) -> None:
    context, _ = step_context(url, workers.model_copy(update={"name": "workers-old"}))

    with pytest.raises(ActionFailed) as failure:
        AsgScale().plan(context, AsgScaleArgs(capacity=4))

    assert failure.value.user_message.startswith("Auto Scaling group workers-old was not found in eu-west-1")


def test_denied_by_iam_names_the_iam_action_and_the_service(
    url: str, ecs: ECSClient, iam: IAMClient, checkout: EcsTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    iam_user(iam, "opsbot-readonly", ["ecs:Describe*", "ecs:List*"], monkeypatch)
    context, _ = step_context(url, checkout)

    with iam_enforced(url):
        plan = EcsDeploy().plan(context, EcsDeployArgs(tag="1.4.2"))
        with pytest.raises(ActionFailed) as failure:
            EcsDeploy().run(context, EcsDeployArgs(tag="1.4.2"))

    assert len(plan) == 2
    assert not failure.value.temporary
    assert failure.value.user_message == (
        "AWS denied ecs:RegisterTaskDefinition on ECS service checkout in cluster payments-prod (eu-west-1): "
        f"User: arn:aws:iam::{ACCOUNT}:user/opsbot-readonly is not authorized to perform: "
        "ecs:RegisterTaskDefinition. The IAM policy opsbot uses must allow ecs:RegisterTaskDefinition."
    )
    assert short(service_of(ecs)["taskDefinition"]) == "checkout:1"


def test_ecs_access_denied_exception_names_the_iam_action_and_the_service() -> None:
    denial = (
        f"User: arn:aws:sts::{ACCOUNT}:assumed-role/opsbot/opsbot-alice-U0123ABC is not authorized to perform: "
        "ecs:DescribeServices because no identity-based policy allows the ecs:DescribeServices action"
    )
    target = EcsTarget(region=REGION, cluster=CLUSTER, service="checkout")

    with StubAws.json_error("AccessDeniedException", denial) as stub:
        context, _ = step_context(stub.url, target)
        with pytest.raises(ActionFailed) as failure:
            EcsStatus().run(context, EcsStatusArgs())

    assert failure.value.user_message == (
        f"AWS denied ecs:DescribeServices on ECS service checkout in cluster payments-prod (eu-west-1): {denial}. "
        "The IAM policy opsbot uses must allow ecs:DescribeServices."
    )


def test_throttling_is_retried_by_botocore_then_reported_as_temporary() -> None:
    target = EcsTarget(region=REGION, cluster=CLUSTER, service="checkout")

    with StubAws.json_error("ThrottlingException", "Rate exceeded") as stub:
        context, _ = step_context(stub.url, target, max_attempts=2)
        with pytest.raises(TemporaryActionError) as failure:
            EcsScale().plan(context, EcsScaleArgs(count=3))

    assert stub.requests == 2
    assert failure.value.user_message == (
        "AWS kept throttling ecs:DescribeServices for ECS service checkout in cluster payments-prod (eu-west-1) "
        "after 2 attempts; try again in a minute."
    )


@pytest.mark.parametrize(
    ("error_type", "status", "temporary", "expected"),
    [
        (
            "InvalidParameterException",
            400,
            False,
            "AWS rejected ecs:DescribeServices for ECS service checkout in cluster payments-prod (eu-west-1): bad input",
        ),
        (
            "ServerException",
            500,
            True,
            "AWS had an internal error on ecs:DescribeServices for ECS service checkout in cluster payments-prod "
            "(eu-west-1) (ServerException); try again.",
        ),
    ],
)
def test_ecs_errors_are_permanent_or_temporary_with_the_service_named(error_type: str, status: int, temporary: bool, expected: str) -> None:
    with StubAws.json_error(error_type, "bad input", status) as stub:
        context, _ = step_context(stub.url, EcsTarget(region=REGION, cluster=CLUSTER, service="checkout"))
        with pytest.raises(ActionFailed) as failure:
            EcsStatus().run(context, EcsStatusArgs())

    assert failure.value.temporary is temporary
    assert failure.value.user_message == expected


def test_auto_scaling_validation_error_names_the_group() -> None:
    with StubAws.query_error("ValidationError", "Group name is malformed") as stub:
        context, _ = step_context(stub.url, AsgTarget(region=REGION, name="workers-prod"))
        with pytest.raises(ActionFailed) as failure:
            AsgScale().plan(context, AsgScaleArgs(capacity=4))

    assert not failure.value.temporary
    assert failure.value.user_message == (
        "AWS rejected autoscaling:DescribeAutoScalingGroups for Auto Scaling group workers-prod (eu-west-1): Group name is malformed"
    )


def test_unreachable_endpoint_is_temporary_and_names_the_region() -> None:
    with StubAws(500, b"") as stub:
        closed = stub.url  # the port is closed once the stub stops
    context, _ = step_context(closed, EcsTarget(region=REGION, cluster=CLUSTER, service="checkout"), max_attempts=1)

    with pytest.raises(TemporaryActionError) as failure:
        EcsStatus().run(context, EcsStatusArgs())

    assert failure.value.user_message.startswith(
        "could not reach AWS in eu-west-1 for ECS service checkout in cluster payments-prod (eu-west-1)"
    )


# --- sessions: endpoint, role, session name ----------------------------------------------


def test_aws_endpoint_url_from_the_environment_is_used(url: str, checkout: EcsTarget, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    context, _ = step_context(None, checkout)

    result = EcsStatus().run(context, EcsStatusArgs())

    assert result.data["desired"] == 2


def test_role_is_assumed_with_a_session_name_naming_the_slack_user(
    url: str, ecs: ECSClient, iam: IAMClient, checkout: EcsTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    iam_user(iam, "opsbot", ["sts:AssumeRole"], monkeypatch)  # the bot's own keys can only assume
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/opsbot"}, "Action": "sts:AssumeRole"}],
    }
    iam.create_role(RoleName="opsbot-deployer", AssumeRolePolicyDocument=json.dumps(trust))
    allow_ecs = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ecs:*", "Resource": "*"}]}
    iam.put_role_policy(RoleName="opsbot-deployer", PolicyName="ecs", PolicyDocument=json.dumps(allow_ecs))
    target = checkout.model_copy(update={"role_arn": ROLE_ARN})
    context, _ = step_context(url, target, actor=("U0123ABC", "José Núñez"))

    with iam_enforced(url):
        EcsScale().run(context, EcsScaleArgs(count=4, poll_seconds=0.01))
        sts = context.backends.aws.sessions.sts(AwsPlace.of(target), Actor("U0123ABC", "José Núñez"))
        identity = sts.get_caller_identity()

    assert service_of(ecs)["desiredCount"] == 4
    assert identity["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/opsbot-deployer/opsbot-Jose-Nunez-U0123ABC"


def test_a_role_opsbot_may_not_assume_is_reported_with_role_and_service(
    url: str, iam: IAMClient, checkout: EcsTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    iam_user(iam, "opsbot", ["ecs:Describe*"], monkeypatch)
    context, _ = step_context(url, checkout.model_copy(update={"role_arn": ROLE_ARN}))

    with iam_enforced(url), pytest.raises(ActionFailed) as failure:
        EcsStatus().run(context, EcsStatusArgs())

    assert failure.value.user_message.startswith(
        f"opsbot could not assume role {ROLE_ARN} for ECS service checkout in cluster payments-prod (eu-west-1): "
        f"AccessDenied: User: arn:aws:iam::{ACCOUNT}:user/opsbot is not authorized to perform: sts:AssumeRole"
    )


def test_concurrent_callers_share_one_role_session(url: str) -> None:
    sessions = AwsSessions(AwsAccess(endpoint_url=url))
    base = AwsPlace(region=REGION)
    assumed: list[str] = []
    sessions.sts(base).meta.events.register("before-call.sts.AssumeRole", lambda **kw: assumed.append("x"))
    place = AwsPlace(region=REGION, role_arn=ROLE_ARN)
    barrier = threading.Barrier(8)
    clients: list[object] = []

    def get_client() -> None:
        barrier.wait()
        clients.append(sessions.ecs(place, Actor("U0123ABC", "alice")))

    threads = [threading.Thread(target=get_client) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(assumed) == 1
    assert len({id(client) for client in clients}) == 1


def test_role_credentials_are_reused_until_shortly_before_they_expire(url: str) -> None:
    now = [datetime.now(UTC)]
    sessions = AwsSessions(AwsAccess(endpoint_url=url), now=lambda: now[0], refresh_before=timedelta(minutes=5))
    place = AwsPlace(region=REGION, role_arn=ROLE_ARN)
    alice = Actor("U0123ABC", "alice")

    def access_key() -> str:
        credentials = sessions.session(place, alice).get_credentials()
        assert credentials is not None
        return credentials.access_key

    first = access_key()
    now[0] += timedelta(minutes=50)
    second = access_key()
    now[0] += timedelta(minutes=6)  # 56 minutes into a 60-minute session: inside the margin
    third = access_key()

    assert first == second
    assert third != second
    assert sessions.session(place, Actor("U999", "bob")) is not sessions.session(place, alice)


@pytest.mark.parametrize(
    ("actor", "expected"),
    [
        (Actor("U0123ABC", "alice"), "opsbot-alice-U0123ABC"),
        (Actor("U0123ABC", "José Núñez (SRE) 🚀"), "opsbot-Jose-Nunez-SRE-U0123ABC"),
        (Actor("U0123ABC", "U0123ABC"), "opsbot-U0123ABC"),
        (Actor("", ""), "opsbot"),
        (Actor("U0123ABC", "x" * 100), "opsbot-" + "x" * 48 + "-U0123ABC"),
    ],
)
def test_role_session_name_is_sts_safe_and_names_the_user(actor: Actor, expected: str) -> None:
    name = role_session_name(actor)

    assert name == expected
    assert len(name) <= 64
    assert all(c.isascii() and (c.isalnum() or c in "_+=,.@-") for c in name)


# --- health in bulk -----------------------------------------------------------------------


def test_health_of_many_services_uses_one_describe_call_per_ten_services(
    url: str,
    ecs: ECSClient,
    autoscaling: AutoScalingClient,
    workers: AsgTarget,
    checkout: EcsTarget,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for index in range(11):
        create_service(ecs, monkeypatch, f"svc-{index}", "checkout:1", desired=1)
    backend = AwsBackend(AwsAccess(endpoint_url=url))
    calls: list[str] = []
    place = AwsPlace(region=REGION)
    backend.sessions.ecs(place).meta.events.register("before-call", lambda **kw: calls.append(kw["event_name"]))
    backend.sessions.autoscaling(place).meta.events.register("before-call", lambda **kw: calls.append(kw["event_name"]))
    items: list[tuple[TargetRef, EcsTarget | AsgTarget]] = [
        (TargetRef(f"svc-{index}", "production"), checkout.model_copy(update={"service": f"svc-{index}"})) for index in range(11)
    ]
    items += [
        (TargetRef("gone", "production"), checkout.model_copy(update={"service": "gone"})),
        (TargetRef("workers", "production"), workers),
        (TargetRef("old-workers", "production"), workers.model_copy(update={"name": "workers-old"})),
        (TargetRef("staging", "staging"), checkout.model_copy(update={"cluster": "payments-staging"})),
    ]

    health = backend.health_of(items)

    assert [h.state for h in health] == ["healthy"] * 11 + ["unknown", "healthy", "unknown", "unknown"]
    assert health[0].counts() == "1/1 ready"
    assert health[0].revision == "checkout:1"
    assert health[11].reasons == ("ECS service gone was not found in cluster payments-prod (eu-west-1)",)
    assert health[12].counts() == "3/3 ready"
    assert health[14].reasons[0].startswith("ECS cluster payments-staging was not found in eu-west-1")
    assert sorted(calls) == [
        "before-call.auto-scaling.DescribeAutoScalingGroups",
        "before-call.ecs.DescribeServices",
        "before-call.ecs.DescribeServices",
        "before-call.ecs.DescribeServices",
    ]
