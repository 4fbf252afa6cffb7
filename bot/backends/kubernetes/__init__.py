"""The Kubernetes backend: per-cluster API clients, bulk health, and (in ``actions``) the steps.

``Backends(config).kubernetes`` builds one ``KubernetesBackend`` per process; actions ask
it for the ``ClusterApi`` of their target and never touch the generated client directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from bot.backends.kubernetes.client import AccessAnswer, AccessCheck, ClusterApi, KubeClients
from bot.backends.kubernetes.health import collect_health
from bot.backends.kubernetes.impersonation import Impersonation
from bot.catalog.config import EksCluster, KubernetesAccess, KubernetesTarget
from bot.catalog.identity import RequesterIdentity
from bot.service_health import ServiceHealth, TargetRef

__all__ = ["AccessAnswer", "ClusterApi", "KubernetesBackend"]

API_GROUPS = {"pods": "", "namespaces": "", "jobs": "batch", "cronjobs": "batch"}
"""The API group of each resource an action's ``cluster_access`` may name (anything else is ``apps``)."""


class KubernetesBackend:
    """Entry point for everything opsbot does with Kubernetes."""

    def __init__(self, access: KubernetesAccess, eks_targets: Mapping[str, EksCluster] | None = None) -> None:
        self.access = access
        self._clients = KubeClients(access, eks_targets)

    def cluster(self, context: str | None) -> ClusterApi:
        """The cached API of one kubeconfig context (``None``: in-cluster or current context)."""
        return self._clients.cluster(context)

    def for_target(self, target: KubernetesTarget, identity: RequesterIdentity | None = None, request_id: int | None = None) -> ClusterApi:
        """The target's cluster, called as ``identity`` when given (impersonation), else as opsbot."""
        api = self._clients.for_target(target)
        return api.impersonating(Impersonation.of(identity, request_id) if identity is not None else None)

    def review_access(self, target: KubernetesTarget, identity: RequesterIdentity | None, needs: Iterable[str]) -> list[AccessAnswer]:
        """Ask the cluster, as ``identity`` (or as opsbot), about each need (``patch deployments``): SelfSubjectAccessReview."""
        api = self.for_target(target, identity)
        return [api.access_review(access_check(need, target)) for need in dict.fromkeys(needs)]

    def health_of(self, items: list[tuple[TargetRef, KubernetesTarget]]) -> list[ServiceHealth]:
        """Health of many Deployments with one list-deployments and one list-pods call per namespace."""
        return collect_health(self._clients.cluster, items)

    def close(self) -> None:
        self._clients.close()


def access_check(need: str, target: KubernetesTarget) -> AccessCheck:
    """``patch deployments/scale`` on the target → the review's resource attributes (named object unless a list)."""
    verb, _, resource_path = need.partition(" ")
    resource, _, subresource = resource_path.partition("/")
    group = API_GROUPS.get(resource, "apps")
    name = target.deployment if resource == "deployments" and verb != "list" else ""
    return AccessCheck(verb=verb, resource=resource, namespace=target.namespace, group=group, subresource=subresource, name=name)
