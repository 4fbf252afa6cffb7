"""Backends own every call to Kubernetes and AWS, and the runbook actions that make them.

Nothing else imports their clients. May import ``bot.catalog`` (the action contract, the
config), ``bot.errors`` and the shared modules, never the wings above. ``Backends`` is created
once per process and hands each action the client it needs, created lazily so a bot that
only manages ECS never loads a kubeconfig (and an HTTP worker that only parses never imports one).
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from bot.catalog.config import OpsbotConfig

if TYPE_CHECKING:
    import urllib3

    from bot.backends.aws import AwsBackend
    from bot.backends.kubernetes import KubernetesBackend


class Backends:
    """The per-process set of backend clients."""

    def __init__(self, config: OpsbotConfig) -> None:
        self._config = config

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

        return KubernetesBackend(self._config.kubernetes)

    @cached_property
    def aws(self) -> AwsBackend:
        from bot.backends.aws import AwsBackend

        return AwsBackend(self._config.aws)
