"""Health of many ECS services and Auto Scaling groups in few calls, for digests and the watch.

Why bulk: the health watch runs every minute over the whole catalog, so it asks
``describe_services`` for up to ten services per (place, cluster) and
``describe_auto_scaling_groups`` for up to fifty groups per place — never one call per
service. A failing batch (a deleted cluster, a missing permission) marks its items
``unknown`` with the reason instead of hiding every other service's health.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from bot.backends.aws.asg import changing_instances, launch_source, ready_instances
from bot.backends.aws.ecs_rollout import (
    primary_deployment,
    rollout_status,
    short_task_definition,
)
from bot.backends.aws.errors import AwsResource, aws_errors
from bot.backends.aws.session import AwsPlace, AwsSessions
from bot.catalog.config import AsgTarget, EcsTarget
from bot.errors import ActionFailed
from bot.service_health import HealthState, ServiceHealth, TargetRef

if TYPE_CHECKING:
    from mypy_boto3_autoscaling.type_defs import AutoScalingGroupTypeDef
    from mypy_boto3_ecs.type_defs import ServiceTypeDef

ECS_BATCH = 10
"""``describe_services`` accepts at most ten services per call."""
ASG_BATCH = 50
"""``describe_auto_scaling_groups`` takes up to fifty names per call (pages of 100)."""

_T = TypeVar("_T")


@dataclass(frozen=True)
class _EcsItem:
    index: int
    ref: TargetRef
    target: EcsTarget


@dataclass(frozen=True)
class _AsgItem:
    index: int
    ref: TargetRef
    target: AsgTarget


def health_of(sessions: AwsSessions, items: Sequence[tuple[TargetRef, EcsTarget | AsgTarget]]) -> list[ServiceHealth]:
    """One ``ServiceHealth`` per item, in the order given."""
    ecs_groups: dict[tuple[AwsPlace, str], list[_EcsItem]] = defaultdict(list)
    asg_groups: dict[AwsPlace, list[_AsgItem]] = defaultdict(list)
    for index, (ref, target) in enumerate(items):
        if isinstance(target, EcsTarget):
            ecs_groups[(AwsPlace.of(target), target.cluster)].append(_EcsItem(index, ref, target))
        else:
            asg_groups[AwsPlace.of(target)].append(_AsgItem(index, ref, target))

    results: dict[int, ServiceHealth] = {}
    for (place, cluster), ecs_items in ecs_groups.items():
        results.update(_ecs_group_health(sessions, place, cluster, ecs_items))
    for place, asg_items in asg_groups.items():
        results.update(_asg_group_health(sessions, place, asg_items))
    return [results[index] for index in range(len(items))]


def ecs_health(ref: TargetRef, target: EcsTarget, service: ServiceTypeDef | None) -> ServiceHealth:
    """Map one described service (``None``: ECS does not know it) to a health record."""
    if service is None or service.get("status", "ACTIVE") != "ACTIVE":
        state = f"is {service.get('status')}" if service else "was not found"
        where = f"in cluster {target.cluster} ({target.region})"
        return _unknown(ref, target, f"ECS service {target.service} {state} {where}")
    status = rollout_status(service)
    primary = primary_deployment(service)
    reasons: tuple[str, ...] = ()
    health_state: HealthState
    if status.state == "failed":
        health_state = "failed"
        reasons = (status.reason or "deployment failed",)
    elif status.state == "done":
        health_state = "healthy"
    elif status.deploying:
        health_state = "progressing"
    else:
        health_state = "degraded"
        reasons = (status.text,)
    return ServiceHealth(
        service=ref.service,
        env=ref.env,
        target=target.describe(),
        state=health_state,
        desired=service.get("desiredCount"),
        ready=service.get("runningCount"),
        updated=primary.get("runningCount") if primary else None,
        available=service.get("runningCount"),
        revision=short_task_definition(service.get("taskDefinition")),
        restarts=primary.get("failedTasks", 0) if primary else 0,
        reasons=reasons,
        details={"rollout": (primary.get("rolloutState", "-") if primary else "-"), "progress": status.text},
    )


def asg_health(ref: TargetRef, target: AsgTarget, group: AutoScalingGroupTypeDef | None) -> ServiceHealth:
    """Map one described group (``None``: not found) to a health record."""
    if group is None:
        return _unknown(ref, target, f"Auto Scaling group {target.name} was not found in {target.region}")
    desired = group["DesiredCapacity"]
    ready = ready_instances(group)
    unhealthy = sum(1 for i in group.get("Instances", []) if i["HealthStatus"] != "Healthy")
    reasons: tuple[str, ...] = (f"{unhealthy} unhealthy instance(s)",) if unhealthy else ()
    state: HealthState
    if ready >= desired and not unhealthy:
        state = "healthy"
    elif changing_instances(group):
        state = "progressing"
    else:
        state = "degraded"
        reasons = reasons or (f"{ready}/{desired} instances in service",)
    return ServiceHealth(
        service=ref.service,
        env=ref.env,
        target=target.describe(),
        state=state,
        desired=desired,
        ready=ready,
        available=ready,
        revision=launch_source(group),
        reasons=reasons,
        details={"min": str(group["MinSize"]), "max": str(group["MaxSize"])},
    )


def _ecs_group_health(sessions: AwsSessions, place: AwsPlace, cluster: str, items: list[_EcsItem]) -> Iterator[tuple[int, ServiceHealth]]:
    names = list(dict.fromkeys(item.target.service for item in items))
    found: dict[str, ServiceTypeDef] = {}
    problems: dict[str, str] = {}
    for batch in _chunks(names, ECS_BATCH):
        resource = AwsResource(kind="ecs", region=place.region, name=", ".join(batch), cluster=cluster)
        try:
            with aws_errors(resource):
                response = sessions.ecs(place).describe_services(cluster=cluster, services=batch)
        except ActionFailed as error:
            problems.update(dict.fromkeys(batch, error.user_message))
            continue
        found.update({s.get("serviceName", ""): s for s in response.get("services", [])})
    for item in items:
        target = item.target
        problem = problems.get(target.service)
        if problem is not None:
            yield item.index, _unknown(item.ref, target, problem)
        else:
            yield item.index, ecs_health(item.ref, target, found.get(target.service))


def _asg_group_health(sessions: AwsSessions, place: AwsPlace, items: list[_AsgItem]) -> Iterator[tuple[int, ServiceHealth]]:
    names = list(dict.fromkeys(item.target.name for item in items))
    found: dict[str, AutoScalingGroupTypeDef] = {}
    problems: dict[str, str] = {}
    for batch in _chunks(names, ASG_BATCH):
        resource = AwsResource(kind="asg", region=place.region, name=", ".join(batch))
        try:
            with aws_errors(resource):
                paginator = sessions.autoscaling(place).get_paginator("describe_auto_scaling_groups")
                for page in paginator.paginate(AutoScalingGroupNames=batch):
                    found.update({g["AutoScalingGroupName"]: g for g in page.get("AutoScalingGroups", [])})
        except ActionFailed as error:
            problems.update(dict.fromkeys(batch, error.user_message))
    for item in items:
        target = item.target
        problem = problems.get(target.name)
        if problem is not None:
            yield item.index, _unknown(item.ref, target, problem)
        else:
            yield item.index, asg_health(item.ref, target, found.get(target.name))


def _unknown(ref: TargetRef, target: EcsTarget | AsgTarget, reason: str) -> ServiceHealth:
    return ServiceHealth(service=ref.service, env=ref.env, target=target.describe(), state="unknown", reasons=(reason,))


def _chunks(values: list[_T], size: int) -> Iterator[list[_T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]
