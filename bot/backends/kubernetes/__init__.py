"""The Kubernetes backend: per-cluster API clients, bulk health, and (in ``actions``) the steps.

``Backends(config).kubernetes`` builds one ``KubernetesBackend`` per process; actions ask
it for the ``ClusterApi`` of their target and never touch the generated client directly.
"""

from __future__ import annotations

from bot.backends.kubernetes.client import ClusterApi, KubeClients
from bot.backends.kubernetes.health import collect_health
from bot.catalog.config import KubernetesAccess, KubernetesTarget
from bot.service_health import ServiceHealth, TargetRef

__all__ = ["ClusterApi", "KubernetesBackend"]


class KubernetesBackend:
    """Entry point for everything opsbot does with Kubernetes."""

    def __init__(self, access: KubernetesAccess) -> None:
        self.access = access
        self._clients = KubeClients(access)

    def cluster(self, context: str | None) -> ClusterApi:
        """The cached API of one kubeconfig context (``None``: in-cluster or current context)."""
        return self._clients.cluster(context)

    def for_target(self, target: KubernetesTarget) -> ClusterApi:
        return self._clients.for_target(target)

    def health_of(self, items: list[tuple[TargetRef, KubernetesTarget]]) -> list[ServiceHealth]:
        """Health of many Deployments with one list-deployments and one list-pods call per namespace."""
        return collect_health(self._clients.cluster, items)

    def close(self) -> None:
        self._clients.close()
