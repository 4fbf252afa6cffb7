"""Everything ``opsbot demo`` runs in-process: a fake Kubernetes API server seeded with the
example's services, a moto server for the AWS examples (if moto is installed), and the
config rewritten to point at them. The bot itself runs unchanged against these.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import TracebackType

from bot.catalog.config import AsgTarget, EcsTarget, GitopsTarget, KubernetesTarget, OpsbotConfig, Service
from bot.store.database import Database
from bot.store.models import utcnow
from fakes.demo_gitops import DemoGitops
from fakes.kubernetes import FakeKubernetesServer, Grant

logger = logging.getLogger(__name__)

DEMO_VERSION = "1.4.1"
DEMO_REPLICAS = 3
DEMO_PROGRESS_DEADLINE_SECONDS = 60
_READ = ("get", "list", "watch")
_WORKLOADS = ("deployments", "deployments/scale", "replicasets", "pods")
_BATCH = ("cronjobs", "jobs", "pods/log")
DEMO_RBAC = (
    # What a team writes (docs/operations.md): everyone reads; developers change staging and
    # production's shop namespace; on-call changes everything. Migrations (runbooks/migrate.yaml)
    # are Jobs: developers run them in staging, on-call anywhere.
    Grant("developers-read", _READ, _WORKLOADS + _BATCH, groups=("opsbot:developers",)),
    Grant("developers-jobs-staging", ("create", "delete"), ("jobs",), groups=("opsbot:developers",), clusters=("demo-staging",)),
    Grant("oncall-jobs", (*_READ, "create", "delete"), _BATCH, groups=("opsbot:platform-oncall",)),
    Grant("developers-staging", ("patch",), _WORKLOADS, groups=("opsbot:developers",), clusters=("demo-staging",)),
    Grant("developers-shop", ("patch",), _WORKLOADS, groups=("opsbot:developers",), namespaces=("shop",), clusters=("demo-production",)),
    Grant("oncall-operate", (*_READ, "patch"), _WORKLOADS, groups=("opsbot:platform-oncall",)),
)


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
        services = self._with_gitops_seeded()
        gitops_contexts = {f"demo-{env}" for service in services.values() for env, e in service.environments.items() if e.gitops}
        contexts = sorted({target.context or "demo" for target in kube} | gitops_contexts)
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
        for cluster, namespace in sorted({(target.context or "demo", target.namespace) for target in kube}):
            # The CronJob runbooks/migrate.yaml copies; its pods print a few lines and succeed (fakes/kubernetes/jobs.py).
            self.kubernetes.add_cronjob(
                cluster=cluster, namespace=namespace, name="db-migrate", image=f"registry.example.com/{namespace}/migrate:{DEMO_VERSION}",
                command=["migrate"], env={"FAKE_JOB_LINES": "4"},
            )  # fmt: skip
        for grant in DEMO_RBAC:
            self.kubernetes.rbac.grant(grant)
        update: dict[str, object] = {
            "kubernetes": self._source.kubernetes.model_copy(update={"kubeconfig": str(kubeconfig)}),
            "services": services,
        }
        self.aws_url = self._start_aws([t for t in targets if isinstance(t, EcsTarget)], [t for t in targets if isinstance(t, AsgTarget)])
        if self.aws_url is not None:
            update["aws"] = self._source.aws.model_copy(update={"endpoint_url": self.aws_url})
        self.config = self._source.model_copy(update=update)

    def _with_gitops_seeded(self) -> dict[str, Service]:
        """The services, each gitops target pointed at a local bare repository that the demo's Flux applies."""
        gitops = DemoGitops(self.kubernetes, self._workdir, DEMO_VERSION)
        services: dict[str, Service] = {}
        for name, service in self._source.services.items():
            environments = {}
            for env, environment in service.environments.items():
                target = environment.target
                seeded = {"gitops": gitops.target_for(name, env, target)} if isinstance(target, GitopsTarget) else {}
                environments[env] = environment.model_copy(update=seeded)
            services[name] = service.model_copy(update={"environments": environments})
        return services

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
