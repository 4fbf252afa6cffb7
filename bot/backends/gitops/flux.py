"""Flux through the Kubernetes API: request a reconciliation, and decide when it applied a commit.

``flux reconcile`` does the same: it sets the annotation ``reconcile.fluxcd.io/requestedAt`` on
the source (the GitRepository, so it fetches the new commit) and then on the Kustomization or
HelmRelease. Done when ``status.lastAppliedRevision`` names the commit (``main@sha1:<sha>``)
and the ``Ready`` condition is True; Ready=False at that revision is failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.backends.kubernetes.client import ClusterApi
from bot.catalog.config import FluxSync
from bot.errors import ActionFailed, TemporaryActionError

if TYPE_CHECKING:  # the generated client is imported when Flux is first reached (see bot.backends.kubernetes.client)
    from kubernetes.client.exceptions import ApiException

REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"

_API: dict[str, tuple[str, str, str]] = {
    "Kustomization": ("kustomize.toolkit.fluxcd.io", "v1", "kustomizations"),
    "HelmRelease": ("helm.toolkit.fluxcd.io", "v2", "helmreleases"),
    "GitRepository": ("source.toolkit.fluxcd.io", "v1", "gitrepositories"),
}


@dataclass(frozen=True)
class FluxProgress:
    done: bool
    failed: bool
    message: str


def flux_progress(obj: dict[str, Any], commit: str) -> FluxProgress:
    """Applied ``commit`` and Ready=True is done; Ready=False after applying or attempting it is failure."""
    status = obj.get("status") or {}
    applied = str(status.get("lastAppliedRevision") or "")
    attempted = str(status.get("lastAttemptedRevision") or "")
    ready: dict[str, Any] = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
    state, reason, message = ready.get("status", "Unknown"), ready.get("reason", ""), ready.get("message", "")
    summary = f"applied {_short(applied) or '?'}, Ready={state}" + (f" ({reason})" if reason else "")
    names_commit = applied.endswith(commit) or applied.endswith(f"sha1:{commit}")
    tried_commit = attempted.endswith(commit) or attempted.endswith(f"sha1:{commit}")
    if state == "False" and (names_commit or tried_commit) and reason not in ("Progressing", "DependencyNotReady"):
        return FluxProgress(False, True, f"Ready=False ({reason}): {message}")
    if names_commit and state == "True":
        return FluxProgress(True, False, summary)
    return FluxProgress(False, False, summary)


def _short(revision: str) -> str:
    """``main@sha1:0123456789…`` → ``main@0123456``."""
    branch, _, sha = revision.rpartition("@")
    sha = sha.removeprefix("sha1:")
    return f"{branch}@{sha[:7]}" if branch else sha[:7]


class FluxClient:
    """Reads and annotates Flux objects in one cluster."""

    def __init__(self, cluster: ClusterApi, sync: FluxSync, timeout: float) -> None:
        from kubernetes import client as k8s

        self._api = k8s.CustomObjectsApi(cluster.api_client)
        self._cluster = cluster.cluster
        self._sync = sync
        self._timeout = timeout

    @property
    def where(self) -> str:
        return f"Flux {self._sync.kind} {self._sync.namespace}/{self._sync.name} in cluster {self._cluster}"

    def read(self) -> dict[str, Any]:
        return self._get(self._sync.kind, self._sync.name)

    def request_reconcile(self, stamp: str) -> None:
        """Annotate the source first (so it fetches the commit), then the Kustomization/HelmRelease."""
        obj = self.read()
        source = (obj.get("spec") or {}).get("sourceRef") or {}
        if source.get("kind") == "GitRepository" and source.get("name"):
            self._annotate("GitRepository", str(source["name"]), str(source.get("namespace") or self._sync.namespace), stamp)
        self._annotate(self._sync.kind, self._sync.name, self._sync.namespace, stamp)

    def _get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException

        group, version, plural = _API[kind]
        try:
            found = self._api.get_namespaced_custom_object(
                group, version, namespace or self._sync.namespace, plural, name, _request_timeout=self._timeout
            )
        except ApiException as error:
            raise self._error(error, kind, name) from None
        return found if isinstance(found, dict) else {}

    def _annotate(self, kind: str, name: str, namespace: str, stamp: str) -> None:
        group, version, plural = _API[kind]
        body = {"metadata": {"annotations": {REQUESTED_AT: stamp}}}
        from kubernetes.client.exceptions import ApiException

        try:
            self._api.patch_namespaced_custom_object(group, version, namespace, plural, name, body, _request_timeout=self._timeout)
        except ApiException as error:
            raise self._error(error, kind, name) from None

    def _error(self, error: ApiException, kind: str, name: str) -> ActionFailed:
        what = f"Flux {kind} {self._sync.namespace}/{name} in cluster {self._cluster}"
        if error.status == 404:
            return ActionFailed(f"no {what} (is Flux installed, and the name right?)")
        if error.status in (401, 403):
            return ActionFailed(f"opsbot may not read or annotate {what} ({error.status}); grant get and patch on {_API[kind][2]}")
        if error.status is None or error.status >= 500 or error.status == 429:
            return TemporaryActionError(f"{what}: API error {error.status} {error.reason}")
        return ActionFailed(f"{what}: API error {error.status} {error.reason}")
