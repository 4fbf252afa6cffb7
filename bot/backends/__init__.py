"""Backends own every call to Kubernetes and AWS; nothing else imports their clients.

``Backends`` is created once per process from the config and hands each action the
client it needs, created lazily so a bot that only manages ECS never loads a kubeconfig.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from bot.config import OpsbotConfig

if TYPE_CHECKING:
    from bot.backends.aws import AwsBackend
    from bot.backends.kubernetes import KubernetesBackend


class Backends:
    """The per-process set of backend clients."""

    def __init__(self, config: OpsbotConfig) -> None:
        self._config = config

    @cached_property
    def kubernetes(self) -> KubernetesBackend:
        from bot.backends.kubernetes import KubernetesBackend

        return KubernetesBackend(self._config.kubernetes)

    @cached_property
    def aws(self) -> AwsBackend:
        from bot.backends.aws import AwsBackend

        return AwsBackend(self._config.aws)
