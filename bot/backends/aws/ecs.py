"""ECS operations for one service: read it, register a task definition, update, wait.

Every AWS call goes through ``aws_errors`` so failures name region, cluster and service.
A fresh client is fetched per call because a rollout wait can outlive the assumed role's
credentials (the session cache re-assumes shortly before they expire).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from bot.backends.aws.ecs_rollout import (
    RolloutStatus,
    family_and_revision,
    primary_deployment,
    rollout_status,
    short_task_definition,
)
from bot.backends.aws.errors import AwsResource, aws_errors, not_found
from bot.catalog.config import EcsTarget
from bot.errors import ActionFailed, StepTimeout

if TYPE_CHECKING:
    from mypy_boto3_ecs.client import ECSClient
    from mypy_boto3_ecs.type_defs import (
        ContainerDefinitionOutputTypeDef,
        RegisterTaskDefinitionRequestTypeDef,
        ServiceTypeDef,
        TagTypeDef,
        TaskDefinitionTypeDef,
    )

    from bot.catalog.actions import StepContext

BACKOFF_FACTOR = 1.5
MAX_POLL_SECONDS = 30.0

READ_ONLY_TASK_DEFINITION_FIELDS = frozenset(
    {
        "taskDefinitionArn",
        "revision",
        "status",
        "requiresAttributes",
        "compatibilities",
        "registeredAt",
        "registeredBy",
        "deregisteredAt",
        "deleteRequestedAt",
    }
)
"""What ``describe_task_definition`` returns but ``register_task_definition`` refuses."""


@dataclass(frozen=True)
class TaskDefinition:
    """A described task definition and its tags (tags are registered with a copy too)."""

    definition: TaskDefinitionTypeDef
    tags: tuple[TagTypeDef, ...] = ()

    @property
    def arn(self) -> str:
        return self.definition.get("taskDefinitionArn", "")

    @property
    def short_name(self) -> str:
        return short_task_definition(self.arn)

    @property
    def family(self) -> str:
        return self.definition.get("family", "")

    @property
    def revision(self) -> int:
        return self.definition.get("revision", 0)

    def container_names(self) -> list[str]:
        return [c.get("name", "") for c in self.definition.get("containerDefinitions", [])]

    def images(self) -> dict[str, str]:
        """Container name → image, in the task definition's order."""
        return {c.get("name", ""): c.get("image", "") for c in self.definition.get("containerDefinitions", [])}


class EcsService:
    """One ECS service as seen with one caller's credentials."""

    def __init__(self, target: EcsTarget, client: Callable[[], ECSClient]) -> None:
        self.target = target
        self.resource = AwsResource(kind="ecs", region=target.region, name=target.service, cluster=target.cluster, role_arn=target.role_arn)
        self._client = client

    def describe(self) -> ServiceTypeDef:
        """The service; missing, INACTIVE or DRAINING services are reported as not found."""
        with aws_errors(self.resource):
            response = self._client().describe_services(cluster=self.target.cluster, services=[self.target.service])
        services = response.get("services", [])
        if not services:
            reasons = ", ".join(f.get("reason", "?") for f in response.get("failures", []))
            raise not_found(self.resource, details=f"describe_services failures: {reasons}")
        service = services[0]
        if service.get("status", "ACTIVE") != "ACTIVE":
            raise not_found(self.resource, state=service.get("status"))
        return service

    def task_definition(self, reference: str) -> TaskDefinition:
        """A task definition by ARN, ``family:revision`` or family (= latest ACTIVE)."""
        with aws_errors(self.resource):
            response = self._client().describe_task_definition(taskDefinition=reference, include=["TAGS"])
        return TaskDefinition(definition=response["taskDefinition"], tags=tuple(response.get("tags", [])))

    def current_task_definition(self, service: ServiceTypeDef) -> TaskDefinition:
        return self.task_definition(service_task_definition(service, self.resource))

    def latest_revision(self, family: str) -> int:
        """The newest ACTIVE revision of ``family``: a new registration gets this + 1."""
        return self.task_definition(family).revision

    def active_revisions(self, family: str) -> dict[int, str]:
        """ACTIVE revisions of exactly ``family`` (the API filters by prefix) → ARN."""
        revisions: dict[int, str] = {}
        with aws_errors(self.resource):
            pages = self._client().get_paginator("list_task_definitions").paginate(familyPrefix=family, status="ACTIVE")
            for page in pages:
                for arn in page.get("taskDefinitionArns", []):
                    arn_family, revision = family_and_revision(arn)
                    if arn_family == family:
                        revisions[revision] = arn
        return dict(sorted(revisions.items()))

    def register_with_image(self, source: TaskDefinition, container: str, image: str) -> TaskDefinition:
        """Register a copy of ``source`` whose ``container`` runs ``image``; all else unchanged."""
        with aws_errors(self.resource):
            client = self._client()
            allowed = _registrable_fields(client)
            request = registration_request(source, container=container, image=image, allowed=allowed)
            response = client.register_task_definition(**request)
        return TaskDefinition(definition=response["taskDefinition"], tags=tuple(response.get("tags", [])))

    def use_task_definition(self, task_definition: str) -> ServiceTypeDef:
        """Point the service at ``task_definition``; ECS starts a new deployment."""
        with aws_errors(self.resource):
            response = self._client().update_service(
                cluster=self.target.cluster, service=self.target.service, taskDefinition=task_definition
            )
        return response["service"]

    def set_desired_count(self, count: int) -> ServiceTypeDef:
        with aws_errors(self.resource):
            response = self._client().update_service(cluster=self.target.cluster, service=self.target.service, desiredCount=count)
        return response["service"]

    def wait_for_rollout(self, ctx: StepContext, *, poll_seconds: float, deployment_id: str | None) -> RolloutStatus:
        return wait_for_rollout(ctx, self.describe, what=self.resource.describe(), poll_seconds=poll_seconds, deployment_id=deployment_id)


def wait_for_rollout(
    ctx: StepContext,
    describe: Callable[[], ServiceTypeDef],
    *,
    what: str,
    poll_seconds: float,
    deployment_id: str | None,
) -> RolloutStatus:
    """Poll until done or failed, within ``ctx``'s deadline and cancellation.

    Progress goes out only when the numbers change; while nothing changes the pause grows
    by ``BACKOFF_FACTOR`` up to ``MAX_POLL_SECONDS``, so a slow rollout costs few calls.
    ``ctx.wait`` wakes at once on cancel and never sleeps past the deadline.
    """
    delay = poll_seconds
    shown: str | None = None
    while True:
        status = rollout_status(describe(), deployment_id)
        if status.state == "done":
            return status
        if status.state == "failed":
            raise ActionFailed(f"rollout of {what} failed: {status.reason} ({status.text})")
        if status.text != shown:
            ctx.progress(status.text)
            shown = status.text
            delay = poll_seconds
        else:
            delay = min(delay * BACKOFF_FACTOR, max(poll_seconds, MAX_POLL_SECONDS))
        try:
            ctx.wait(delay)
        except StepTimeout as error:
            raise StepTimeout(f"gave up waiting for {what}: still {status.text}") from error


def deployment_id_of(service: ServiceTypeDef) -> str | None:
    """The PRIMARY deployment ``update_service`` just created (the one to watch)."""
    primary = primary_deployment(service)
    return primary.get("id") if primary else None


def service_task_definition(service: ServiceTypeDef, resource: AwsResource) -> str:
    arn = service.get("taskDefinition")
    if not arn:
        raise ActionFailed(f"{resource.describe()} has no task definition (is it managed by CodeDeploy or EXTERNAL?)")
    return arn


def previous_revision(revisions: Mapping[int, str], *, current: int, wanted: int | None, family: str) -> int:
    """The revision to roll back to: ``wanted`` if ACTIVE, else the newest ACTIVE below ``current``."""
    available = ", ".join(str(revision) for revision in sorted(revisions)) or "none"
    if wanted is not None:
        if wanted not in revisions:
            raise ActionFailed(f"{family}:{wanted} is not an ACTIVE revision; ACTIVE revisions of {family}: {available}")
        return wanted
    earlier = [revision for revision in revisions if revision < current]
    if not earlier:
        raise ActionFailed(
            f"there is no ACTIVE revision of {family} below {family}:{current} to roll back to (ACTIVE revisions: {available})"
        )
    return max(earlier)


def choose_container(source: TaskDefinition, wanted: str | None) -> str:
    """The container to change: the one asked for, else the only one, else an error listing them."""
    names = source.container_names()
    listed = ", ".join(names)
    if wanted is not None:
        if wanted not in names:
            raise ActionFailed(f"container {wanted} is not in task definition {source.short_name} (containers: {listed})")
        return wanted
    if len(names) == 1:
        return names[0]
    raise ActionFailed(
        f"task definition {source.short_name} has several containers ({listed}); name one with "
        "`container:` in the step or `container` in the service's ecs config"
    )


def registration_request(source: TaskDefinition, *, container: str, image: str, allowed: set[str]) -> RegisterTaskDefinitionRequestTypeDef:
    """The ``register_task_definition`` arguments that copy ``source`` with one new image.

    Only fields the API accepts are copied (``allowed`` is its input shape), so fields
    AWS adds to the describe output later cannot break a deploy.
    """
    fields = {
        key: value
        for key, value in source.definition.items()
        if key in allowed and key not in READ_ONLY_TASK_DEFINITION_FIELDS and value is not None
    }
    fields["containerDefinitions"] = [
        _with_image(definition, image) if definition.get("name") == container else definition
        for definition in source.definition.get("containerDefinitions", [])
    ]
    if source.tags:
        fields["tags"] = list(source.tags)
    return cast("RegisterTaskDefinitionRequestTypeDef", fields)


def _with_image(definition: ContainerDefinitionOutputTypeDef, image: str) -> ContainerDefinitionOutputTypeDef:
    changed = dict(definition)
    changed["image"] = image
    return cast("ContainerDefinitionOutputTypeDef", changed)


def _registrable_fields(client: ECSClient) -> set[str]:
    """The members of RegisterTaskDefinition's input, from the botocore service model."""
    shape = client.meta.service_model.operation_model("RegisterTaskDefinition").input_shape
    return set(shape.members) if shape is not None else set()
