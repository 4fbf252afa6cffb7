"""Backends own every call to Kubernetes and AWS, and the runbook actions that make them.

Nothing else imports their clients. May import ``bot.catalog`` (the action contract, the
config), ``bot.errors`` and the shared modules, never the wings above. ``Backends`` is created
once per process and hands each action the client it needs, created lazily so a bot that
only manages ECS never loads a kubeconfig (and an HTTP worker that only parses never imports one).
"""

from __future__ import annotations

import threading
from functools import cached_property
from typing import TYPE_CHECKING

from bot.catalog.config import EksCluster, ImageRegistry, OpsbotConfig, ServiceSource
from bot.settings import Settings

if TYPE_CHECKING:
    import urllib3

    from bot.backends.aws import AwsBackend
    from bot.backends.gitops import GitopsBackend
    from bot.backends.kubernetes import KubernetesBackend
    from bot.backends.registry import RegistryClient
    from bot.backends.source import SourceClient
    from bot.backends.versions import VersionSuggestions


class Backends:
    """The per-process set of backend clients."""

    def __init__(self, config: OpsbotConfig, settings: Settings | None = None) -> None:
        self._config = config
        self._settings = settings
        self._lock = threading.Lock()
        self._registries: dict[ImageRegistry, RegistryClient] = {}

    @property
    def config(self) -> OpsbotConfig:
        return self._config

    @cached_property
    def http(self) -> urllib3.PoolManager:
        """One connection pool for every ``http.request`` step (urllib3 is already here for the cloud clients)."""
        import urllib3

        return urllib3.PoolManager(num_pools=10, maxsize=4)

    @cached_property
    def kubernetes(self) -> KubernetesBackend:
        from bot.backends.kubernetes import KubernetesBackend

        return KubernetesBackend(self._config.kubernetes, eks_targets(self._config))

    @cached_property
    def aws(self) -> AwsBackend:
        from bot.backends.aws import AwsBackend

        return AwsBackend(self._config.aws)

    @cached_property
    def gitops(self) -> GitopsBackend:
        from bot.backends.gitops import GitopsBackend

        return GitopsBackend(self._settings or Settings(), lambda: self.kubernetes)

    def registry(self, registry: ImageRegistry) -> RegistryClient:
        """The client of one image registry, kept so its bearer tokens are reused."""
        from bot.backends.registry import RegistryClient

        with self._lock:
            client = self._registries.get(registry)
            if client is None:
                client = self._registries[registry] = RegistryClient(registry)
            return client

    def source(self, source: ServiceSource) -> SourceClient:
        """A read client of a service's GitHub repository (the token from ``OPSBOT_GITHUB_TOKEN_FILE``, if set)."""
        from bot.backends.source import SourceClient

        token = (self._settings or Settings()).github_token
        return SourceClient(source.api_url, source.github, token.get_secret_value() if token else None)

    @cached_property
    def versions(self) -> VersionSuggestions:
        """Where a form's version suggestions come from; ``register`` adds a source (an OCI registry's tags)."""
        from bot.backends.versions import EcsTaskDefinitionImages, GitopsFileHistory, KubernetesImages, VersionSuggestions

        suggestions = VersionSuggestions()
        suggestions.register("kubernetes", KubernetesImages(lambda: self.kubernetes))
        suggestions.register("ecs", EcsTaskDefinitionImages(lambda: self.aws))
        suggestions.register("gitops", GitopsFileHistory(lambda: self.gitops))
        # After the target's own history: the tags its registry holds (a service or config ``registry``).
        from bot.backends.registry.versions import RegistryTags

        for kind in ("kubernetes", "ecs", "gitops"):
            suggestions.register(kind, RegistryTags(self._config, self.registry))
        return suggestions


def eks_targets(config: OpsbotConfig) -> dict[str, EksCluster]:
    """Every ``eks:`` of a Kubernetes target, by its client key (``eks:<name>``)."""
    found: dict[str, EksCluster] = {}
    for service in config.services.values():
        for environment in service.environments.values():
            target = environment.kubernetes
            if target is not None and target.eks is not None and target.cluster_key is not None:
                found[target.cluster_key] = target.eks
    return found
