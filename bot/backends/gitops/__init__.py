"""The GitOps backend: deploys as commits to the repository Argo CD or Flux deploys from (docs/gitops.md).

``Backends(config, settings).gitops`` builds one ``GitopsBackend`` per process. It owns the git
remotes (one private bare cache per repository URL), the Argo CD and GitHub REST clients, and
reaches Flux objects through the Kubernetes backend's clusters. Every credential comes from the
settings (``*_FILE`` variables) and is handed to the client that needs it, never put in a URL.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from bot.backends.gitops.argocd import ArgoCdClient
from bot.backends.gitops.github import GitHubClient
from bot.backends.gitops.github_auth import GitHubApp, GitHubCredentials
from bot.backends.gitops.repository import GitCredentials, GitRemote, Identity, private_key_file
from bot.catalog.config import ArgoCdSync, FluxSync, GitopsTarget
from bot.errors import ActionFailed
from bot.service_health import ServiceHealth, TargetRef
from bot.settings import Settings

if TYPE_CHECKING:
    from bot.backends.gitops.flux import FluxClient
    from bot.backends.kubernetes import KubernetesBackend

__all__ = ["GitopsBackend"]


class GitopsBackend:
    """Entry point for everything opsbot does with git, Argo CD, Flux and GitHub."""

    def __init__(self, settings: Settings, kubernetes: Callable[[], KubernetesBackend]) -> None:
        self._settings = settings
        self._kubernetes = kubernetes
        self._lock = threading.Lock()
        self._remotes: dict[str, GitRemote] = {}
        self._cache_root = settings.git_cache_dir or Path(tempfile.mkdtemp(prefix="opsbot-git-"))
        self.identity = Identity(settings.git_author_name, settings.git_author_email)
        ssh_key = settings.git_ssh_key.get_secret_value() if settings.git_ssh_key else None
        self._credentials = GitCredentials(
            username=settings.git_username,
            token=settings.git_token.get_secret_value() if settings.git_token else None,
            ssh_key_file=private_key_file(ssh_key) if ssh_key else None,
        )
        self.github_credentials = github_credentials(settings)

    def remote(self, target: GitopsTarget) -> GitRemote:
        """The cached remote of the target's repository (one cache per URL, shared by every service in it)."""
        with self._lock:
            remote = self._remotes.get(target.repo)
            if remote is None:
                remote = self._remotes[target.repo] = GitRemote(target.repo, self._cache_root, self._credentials)
            return remote

    def argocd(self, sync: ArgoCdSync) -> ArgoCdClient:
        token = self._settings.argocd_token
        return ArgoCdClient(sync, token.get_secret_value() if token else None)

    def flux(self, sync: FluxSync) -> FluxClient:
        from bot.backends.gitops.flux import FluxClient

        kubernetes = self._kubernetes()
        return FluxClient(kubernetes.cluster(sync.context), sync, kubernetes.access.request_timeout.total_seconds())

    def github(self, target: GitopsTarget) -> GitHubClient:
        slug = target.pull_request_slug()
        if slug is None:
            raise ActionFailed(f"{target.describe()} has no GitHub repository for pull_request mode")
        return GitHubClient(target.pull_request.api_url, slug, self.github_credentials)

    def github_repository(self, api_url: str, slug: str) -> GitHubClient:
        """A repository's REST client (``github.workflow_dispatch``), with opsbot's GitHub token or App."""
        return GitHubClient(api_url, slug, self.github_credentials)

    def health_of(self, items: list[tuple[TargetRef, GitopsTarget]]) -> list[ServiceHealth]:
        """Health of each gitops target: one fetch per repository (the cache is shared) and one controller read each."""
        from bot.backends.gitops.status import gitops_health

        return [gitops_health(self, ref, target) for ref, target in items]

    def close(self) -> None:
        with self._lock:
            for remote in self._remotes.values():
                remote.close()
            self._remotes.clear()
        if self._credentials.ssh_key_file is not None:  # the key's private copy for dulwich's ssh
            Path(self._credentials.ssh_key_file).unlink(missing_ok=True)


def github_credentials(settings: Settings) -> GitHubCredentials:
    """The token when one is set, else the GitHub App when all three of its settings are, else none (a call then says what to set)."""
    if settings.github_token is not None:
        return GitHubCredentials(token=settings.github_token.get_secret_value())
    key, app_id, installation = settings.github_app_private_key, settings.github_app_id, settings.github_app_installation_id
    if key is not None and app_id and installation:
        return GitHubCredentials(app=GitHubApp(app_id=app_id, installation_id=installation, private_key_pem=key.get_secret_value()))
    return GitHubCredentials()
