"""Version suggestions from a service's image registry: the repository's tags, newest version first.

``RegistryTags`` has the shape of a form's version source (``versions(service, env, target)``)
so it can be registered beside the target's own history (ReplicaSets, task definitions). It
needs to know the repository without reading the target: the registry's ``repository``, or a
gitops target's ``kustomize_image``; otherwise it suggests nothing rather than guess.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from bot.backends.registry.client import RegistryClient, repository_of
from bot.catalog.config import GitopsTarget, ImageRegistry, OpsbotConfig, Target

MAX_TAGS = 100
"""Slack shows at most 100 options in an ``external_select``."""
_PARTS = re.compile(r"\d+|[^\d.+-]+")


class RegistryTags:
    """Tags of the service's image repository in its registry (the service's, else the config's ``registry``)."""

    def __init__(self, config: OpsbotConfig, client_for: Callable[[ImageRegistry], RegistryClient]) -> None:
        self._config = config
        self._client_for = client_for

    def versions(self, service: str, env: str, target: Target) -> list[str]:
        registry = self._config.registry_of(service)
        if registry is None:
            return []
        repository = registry.repository
        if repository is None and isinstance(target, GitopsTarget) and target.kustomize_image:
            repository = repository_of(target.kustomize_image, registry)
        if repository is None:
            return []
        return newest_first(self._client_for(registry).list_tags(repository))[:MAX_TAGS]


def newest_first(tags: list[str]) -> list[str]:
    """Version-looking tags by their numbers, highest first (``1.10.0`` above ``1.9.3``); others (``latest``, ``sha-…``) after."""
    versions = [tag for tag in tags if tag[:1].isdigit() or (tag[:1] in "vV" and tag[1:2].isdigit())]
    others = sorted(set(tags) - set(versions))
    return sorted(versions, key=_version_key, reverse=True) + others


def _version_key(tag: str) -> tuple[tuple[int, int | str], ...]:
    """Numbers compare as numbers; a pre-release (``1.4.2-rc1``) sorts below its release (``1.4.2``)."""
    parts: list[tuple[int, int | str]] = []
    for part in _PARTS.findall(tag.lstrip("vV")):
        parts.append((1, int(part)) if part.isdigit() else (0, part))
    release = "-" not in tag
    return (*parts, (2 if release else -1, 0))
