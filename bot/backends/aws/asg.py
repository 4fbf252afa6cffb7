"""EC2 Auto Scaling operations for one group: read it, check a capacity, set it.

The range check happens here, before ``set_desired_capacity``, because AWS's own
ValidationError does not say what the allowed range is, and a person asking in Slack
needs exactly that.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

from bot.backends.aws.errors import AwsResource, aws_errors, not_found
from bot.catalog.config import AsgTarget
from bot.errors import ActionFailed

if TYPE_CHECKING:
    from mypy_boto3_autoscaling.client import AutoScalingClient
    from mypy_boto3_autoscaling.type_defs import AutoScalingGroupTypeDef

PENDING_STATES_PREFIXES = ("Pending", "Warmed:Pending")
LEAVING_STATES_PREFIXES = ("Terminating", "Detaching", "EnteringStandby")


class AutoScalingGroup:
    """One Auto Scaling group as seen with one caller's credentials."""

    def __init__(self, target: AsgTarget, client: Callable[[], AutoScalingClient]) -> None:
        self.target = target
        self.resource = AwsResource(kind="asg", region=target.region, name=target.name, role_arn=target.role_arn)
        self._client = client

    def describe(self) -> AutoScalingGroupTypeDef:
        """The group; a missing group is a config error (the API returns an empty list)."""
        with aws_errors(self.resource):
            response = self._client().describe_auto_scaling_groups(AutoScalingGroupNames=[self.target.name])
        groups = response.get("AutoScalingGroups", [])
        if not groups:
            raise not_found(self.resource)
        return groups[0]

    def set_desired_capacity(self, capacity: int) -> None:
        """Set it now: cooldowns protect against alarms flapping, not against a person asking."""
        with aws_errors(self.resource):
            self._client().set_desired_capacity(AutoScalingGroupName=self.target.name, DesiredCapacity=capacity, HonorCooldown=False)


def check_capacity(group: AutoScalingGroupTypeDef, capacity: int, target: AsgTarget) -> None:
    """Refuse a capacity outside min..max, naming the range."""
    low, high = group["MinSize"], group["MaxSize"]
    if not low <= capacity <= high:
        raise ActionFailed(f"{target.name} ({target.region}) takes {low}–{high} instances; {capacity} is outside that range")


def lifecycle_counts(group: AutoScalingGroupTypeDef) -> Counter[str]:
    """Instances per lifecycle state (InService, Pending, Terminating, …)."""
    return Counter(instance["LifecycleState"] for instance in group.get("Instances", []))


def health_counts(group: AutoScalingGroupTypeDef) -> Counter[str]:
    """Instances per health status (Healthy, Unhealthy)."""
    return Counter(instance["HealthStatus"] for instance in group.get("Instances", []))


def ready_instances(group: AutoScalingGroupTypeDef) -> int:
    """InService and Healthy: the instances actually doing work."""
    return sum(
        1 for instance in group.get("Instances", []) if instance["LifecycleState"] == "InService" and instance["HealthStatus"] == "Healthy"
    )


def changing_instances(group: AutoScalingGroupTypeDef) -> int:
    """Instances launching or leaving: a scaling activity is under way."""
    prefixes = PENDING_STATES_PREFIXES + LEAVING_STATES_PREFIXES
    return sum(1 for instance in group.get("Instances", []) if instance["LifecycleState"].startswith(prefixes))


def launch_source(group: AutoScalingGroupTypeDef) -> str | None:
    """What new instances are built from: ``template:version`` or the launch configuration."""
    template = group.get("LaunchTemplate")
    if template:
        name = template.get("LaunchTemplateName") or template.get("LaunchTemplateId", "?")
        return f"{name}:{template.get('Version', '$Default')}"
    mixed = group.get("MixedInstancesPolicy")
    if mixed:
        spec = mixed.get("LaunchTemplate", {}).get("LaunchTemplateSpecification", {})
        name = spec.get("LaunchTemplateName") or spec.get("LaunchTemplateId", "?")
        return f"{name}:{spec.get('Version', '$Default')}"
    return group.get("LaunchConfigurationName")
