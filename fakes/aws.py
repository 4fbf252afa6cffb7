"""The demo's AWS: a moto server in this process, seeded with the example's ECS and ASG targets.

Only used by ``opsbot demo`` (the ``demo`` extra installs moto). The bot reaches it over
HTTP exactly as it would reach AWS, through ``aws.endpoint_url``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

import boto3

from bot.catalog.config import AsgTarget, EcsTarget

DEMO_IMAGE_TAG = "1.4.1"


class DemoAws:
    """A moto server with dummy credentials; ``url`` is the endpoint to configure."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        for name, value in {
            "AWS_ACCESS_KEY_ID": "demo",
            "AWS_SECRET_ACCESS_KEY": "demo",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }.items():
            os.environ[name] = value
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"

    def seed(self, ecs_targets: Iterable[EcsTarget], asg_targets: Iterable[AsgTarget]) -> None:
        """Create each ECS service (2 tasks on revision 1) and each group (min 1, max 10, desired 3)."""
        for service in ecs_targets:
            self._seed_ecs(service)
        for group in asg_targets:
            self._seed_asg(group)

    def stop(self) -> None:
        self._server.stop()

    def _seed_ecs(self, target: EcsTarget) -> None:
        ecs = boto3.client("ecs", endpoint_url=self.url, region_name=target.region)
        ecs.create_cluster(clusterName=target.cluster)
        container = target.container or target.service
        ecs.register_task_definition(
            family=target.service,
            containerDefinitions=[
                {"name": container, "image": f"registry.example.com/{target.service}:{DEMO_IMAGE_TAG}", "memory": 512, "essential": True}
            ],
        )
        # moto fixes a service's running count when it is created: make it report a finished rollout.
        os.environ["MOTO_ECS_SERVICE_RUNNING"] = "2"
        ecs.create_service(cluster=target.cluster, serviceName=target.service, taskDefinition=f"{target.service}:1", desiredCount=2)

    def _seed_asg(self, target: AsgTarget) -> None:
        autoscaling = boto3.client("autoscaling", endpoint_url=self.url, region_name=target.region)
        autoscaling.create_launch_configuration(
            LaunchConfigurationName=f"{target.name}-lc", ImageId="ami-12c6146b", InstanceType="t3.micro"
        )
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=target.name,
            LaunchConfigurationName=f"{target.name}-lc",
            MinSize=1,
            MaxSize=10,
            DesiredCapacity=3,
            AvailabilityZones=[f"{target.region}a"],
        )
