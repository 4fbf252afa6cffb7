"""Versions a form can suggest for a target: what it ran before, newest first, from whichever backends know.

A ``VersionSource`` answers for one kind of target (``kubernetes``: the images of the
Deployment's ReplicaSets; ``ecs``: the images of the family's ACTIVE task definitions); more
can be registered (an OCI registry's tags, for a service that names its image repository).
``VersionSuggestions.suggest`` merges them, newest first without repeats, and never raises: a
suggestion list is a convenience, so a backend that fails costs a log line, not the form.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from bot.catalog.config import EcsTarget, GitopsTarget, KubernetesTarget, Target, TargetKind
from bot.errors import OpsbotError

if TYPE_CHECKING:
    from bot.backends.aws import AwsBackend
    from bot.backends.gitops import GitopsBackend
    from bot.backends.kubernetes import KubernetesBackend

logger = logging.getLogger(__name__)

MAX_SUGGESTIONS = 50
"""Slack shows at most 100 options in an ``external_select``; fifty past versions is already a long history."""


class VersionSource(Protocol):
    """Past (or available) versions of a target, newest first."""

    def versions(self, service: str, env: str, target: Target) -> list[str]: ...


class VersionSuggestions:
    """The registered sources, by target kind; ``suggest`` asks every source for the target's kind."""

    def __init__(self) -> None:
        self._sources: dict[str, list[VersionSource]] = {}

    def register(self, kind: TargetKind | str, source: VersionSource) -> None:
        self._sources.setdefault(kind, []).append(source)

    def suggest(self, service: str, env: str, target: Target, *, limit: int = MAX_SUGGESTIONS) -> list[str]:
        found: dict[str, None] = {}
        for source in self._sources.get(target.kind, []):
            try:
                found.update(dict.fromkeys(source.versions(service, env, target)))
            except OpsbotError as error:
                logger.warning("no version suggestions for %s/%s from %s: %s", service, env, type(source).__name__, error.user_message)
            except Exception:
                logger.exception("version suggestions for %s/%s failed in %s", service, env, type(source).__name__)
        return [version for version in found if version][:limit]


def image_tag(image: str | None) -> str | None:
    """``registry:5000/shop/checkout:1.4.2`` → ``1.4.2``; None for an image without a tag (or a digest only)."""
    if not image or "@" in image:
        return None
    name = image.rsplit("/", 1)[-1]
    return name.split(":", 1)[1] if ":" in name else None


class KubernetesImages:
    """The image tags of the Deployment's own ReplicaSets (its rollout history), by revision, newest first."""

    def __init__(self, kubernetes: Callable[[], KubernetesBackend]) -> None:
        self._kubernetes = kubernetes

    def versions(self, service: str, env: str, target: Target) -> list[str]:
        if not isinstance(target, KubernetesTarget):
            return []
        # Imported here: an HTTP worker imports this module's types but must never load the kubernetes client.
        from bot.backends.kubernetes.health import primary_image
        from bot.backends.kubernetes.rollout import REVISION_ANNOTATION, controlled_replicasets, selector_string

        api = self._kubernetes().for_target(target)
        deployment = api.read_deployment(target.namespace, target.deployment)
        selector = selector_string((deployment.get("spec") or {}).get("selector"))
        history: list[tuple[int, str]] = []
        for replicaset in controlled_replicasets(deployment, api.list_replicasets(target.namespace, selector)):
            annotations = (replicaset.get("metadata") or {}).get("annotations") or {}
            revision = str(annotations.get(REVISION_ANNOTATION, "0"))
            tag = image_tag(primary_image(replicaset, target.container))
            if tag is not None and revision.isdigit():
                history.append((int(revision), tag))
        return [tag for _, tag in sorted(history, reverse=True)]


class EcsTaskDefinitionImages:
    """The image tags of the family's ACTIVE task definition revisions, newest first (at most ``depth`` read)."""

    def __init__(self, aws: Callable[[], AwsBackend], *, depth: int = 10) -> None:
        self._aws = aws
        self._depth = depth

    def versions(self, service: str, env: str, target: Target) -> list[str]:
        if not isinstance(target, EcsTarget):
            return []
        from bot.backends.aws.ecs import choose_container

        ecs = self._aws().ecs(target)
        current = ecs.current_task_definition(ecs.describe())
        container = choose_container(current, target.container)  # the container a deploy changes, as ecs.deploy picks it
        revisions = ecs.active_revisions(current.family)
        tags: list[str] = []
        for revision in sorted(revisions, reverse=True)[: self._depth]:
            tag = image_tag(ecs.task_definition(revisions[revision]).images().get(container))
            if tag is not None:
                tags.append(tag)
        return tags


class GitopsFileHistory:
    """The image tags the gitops file held, commit by commit (``git log -- path``), newest first (at most ``depth`` commits)."""

    def __init__(self, gitops: Callable[[], GitopsBackend], *, depth: int = 30) -> None:
        self._gitops = gitops
        self._depth = depth

    def versions(self, service: str, env: str, target: Target) -> list[str]:
        if not isinstance(target, GitopsTarget):
            return []
        from bot.backends.gitops.edits import EditError, read_image

        remote = self._gitops().remote(target)
        head = remote.fetch(target.branch)
        tags: list[str] = []
        for logged in remote.history(head, target.path, self._depth):
            text = remote.read(logged.sha, target.path)
            try:
                tag = read_image(text, target).tag if text is not None else None
            except EditError:
                continue  # a commit where the file did not parse says nothing about versions
            if tag and "sha256:" not in tag:
                tags.append(tag)
        return tags
