"""Everything ``opsbot demo`` runs in-process: a fake Kubernetes API server seeded with the
example's services, a moto server for the AWS examples (if moto is installed), and the
config rewritten to point at them. The bot itself runs unchanged against these.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import TracebackType

from bot.catalog.config import AsgTarget, EcsTarget, KubernetesTarget, OpsbotConfig
from bot.store.database import Database
from bot.store.models import utcnow
from fakes.kubernetes import FakeKubernetesServer

logger = logging.getLogger(__name__)

DEMO_VERSION = "1.4.1"
DEMO_REPLICAS = 3
DEMO_PROGRESS_DEADLINE_SECONDS = 60


class DemoEnvironment:
    """Start with ``with DemoEnvironment(config, workdir) as demo:``; use ``demo.config``."""

    def __init__(self, config: OpsbotConfig, workdir: Path, *, tick_seconds: float = 0.5, seconds_per_tick: float = 10.0) -> None:
        self._source = config
        self._workdir = workdir
        self.kubernetes = FakeKubernetesServer(tick_seconds=tick_seconds, seconds_per_tick=seconds_per_tick)
        self.aws_url: str | None = None
        self._aws: object | None = None
        self.config = config

    def __enter__(self) -> DemoEnvironment:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        self.kubernetes.start()
        targets = [env.target for service in self._source.services.values() for env in service.environments.values()]
        kube = [target for target in targets if isinstance(target, KubernetesTarget)]
        contexts = sorted({target.context or "demo" for target in kube})
        kubeconfig = self.kubernetes.write_kubeconfig(
            self._workdir / "kubeconfig", contexts=contexts or ["demo"], current=contexts[0] if contexts else None
        )
        for target in kube:
            self.kubernetes.add_deployment(
                cluster=target.context or "demo",
                namespace=target.namespace,
                name=target.deployment,
                image=f"registry.example.com/{target.namespace}/{target.deployment}:{DEMO_VERSION}",
                replicas=DEMO_REPLICAS,
                container=target.container,
                progress_deadline_seconds=DEMO_PROGRESS_DEADLINE_SECONDS,
            )
        update: dict[str, object] = {"kubernetes": self._source.kubernetes.model_copy(update={"kubeconfig": str(kubeconfig)})}
        self.aws_url = self._start_aws([t for t in targets if isinstance(t, EcsTarget)], [t for t in targets if isinstance(t, AsgTarget)])
        if self.aws_url is not None:
            update["aws"] = self._source.aws.model_copy(update={"endpoint_url": self.aws_url})
        self.config = self._source.model_copy(update=update)

    def seed_history(self, database: Database) -> int:
        """A few weeks of past deploys, failures, rollbacks and incidents in the audit log (for ``/ops insights``)."""
        from fakes.demo_history import seed_history

        return seed_history(database, self.config, utcnow())

    def stop(self) -> None:
        if self._aws is not None:
            from fakes.aws import DemoAws

            assert isinstance(self._aws, DemoAws)
            self._aws.stop()
        self.kubernetes.stop()

    def _start_aws(self, ecs: list[EcsTarget], asg: list[AsgTarget]) -> str | None:
        if not ecs and not asg:
            return None
        try:
            from fakes.aws import DemoAws

            aws = DemoAws()
        except ImportError:
            logger.warning("moto is not installed (pip install 'opsbot[demo]'): the ECS and ASG examples will fail to connect")
            return None
        aws.seed(ecs, asg)
        self._aws = aws
        return aws.url
