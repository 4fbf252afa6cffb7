"""Flux in the fake cluster: its objects (GitRepository, Kustomization, HelmRelease) and a minimal controller.

The objects are served at their real paths (``/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/
{ns}/kustomizations/{name}``, ``helm.toolkit.fluxcd.io/v2`` helmreleases, ``source.toolkit.fluxcd.io/v1``
gitrepositories), read with GET and changed with a JSON merge PATCH, as ``flux reconcile`` does when
it sets ``reconcile.fluxcd.io/requestedAt``. The controller runs after each cluster tick: a new
request makes it read the branch head of the source (a real bare repository), take the image from
the file (a kustomize ``images:`` entry, or ``image.repository``/``image.tag`` of Helm values),
patch the Deployment through the API like any client, then report ``lastAttemptedRevision``,
``Ready=Unknown`` while the rollout runs, and ``lastAppliedRevision`` with ``Ready=True`` once it is
available, or ``Ready=False`` (HealthCheckFailed) when the rollout exceeds its progress deadline.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml

from fakes.kubernetes.exchange import ApiRequest, ApiResponse
from fakes.kubernetes.patching import json_merge_patch
from fakes.kubernetes.statuses import GroupResource, not_found

if TYPE_CHECKING:
    from fakes.kubernetes.apiserver import FakeKubernetesServer

REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"
KINDS = {
    ("kustomize.toolkit.fluxcd.io", "v1", "kustomizations"): "Kustomization",
    ("helm.toolkit.fluxcd.io", "v2", "helmreleases"): "HelmRelease",
    ("source.toolkit.fluxcd.io", "v1", "gitrepositories"): "GitRepository",
}
_PATH = re.compile(r"^/apis/(?P<group>[^/]+)/(?P<version>[^/]+)/namespaces/(?P<ns>[^/]+)/(?P<plural>[^/]+)/(?P<name>[^/]+)$")


@dataclass
class Applier:
    """What a Kustomization/HelmRelease applies: a file in the source, and the Deployment its image goes to."""

    file: str
    namespace: str
    deployment: str
    pending: str | None = None


class FakeFlux:
    """Flux objects in one fake cluster, served through the fake API server, reconciled after each tick."""

    def __init__(self, server: FakeKubernetesServer, cluster: str) -> None:
        self.server = server
        self.cluster = cluster
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.appliers: dict[tuple[str, str, str], Applier] = {}
        server.api.extensions.append(self.handle)
        server.controllers.after_tick.append(self.reconcile)

    # -- setup ------------------------------------------------------------------------

    def add_git_repository(self, namespace: str, name: str, *, repo_path: str, branch: str = "main") -> dict[str, Any]:
        spec = {"url": f"file://{repo_path}", "ref": {"branch": branch}, "interval": "1m"}
        return self._add("GitRepository", namespace, name, spec)

    def add_applier(self, kind: str, namespace: str, name: str, *, source: str, file: str, deployment: tuple[str, str]) -> dict[str, Any]:
        """A Kustomization or HelmRelease applying ``file`` of GitRepository ``source`` to ``deployment`` (namespace, name)."""
        spec = {"interval": "10m", "sourceRef": {"kind": "GitRepository", "name": source}, "path": file.rsplit("/", 1)[0]}
        obj = self._add(kind, namespace, name, spec)
        self.appliers[(kind, namespace, name)] = Applier(file, *deployment)
        return obj

    def _add(self, kind: str, namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        group, version, _ = next(key for key, value in KINDS.items() if value == kind)
        obj = {
            "apiVersion": f"{group}/{version}", "kind": kind,
            "metadata": {"name": name, "namespace": namespace, "generation": 1, "annotations": {}},
            "spec": spec, "status": {"conditions": [_ready("True", "ReconciliationSucceeded", "initial")]},
        }  # fmt: skip
        self.objects[(kind, namespace, name)] = obj
        return obj

    # -- the API ------------------------------------------------------------------------

    def handle(self, request: ApiRequest) -> ApiResponse | None:
        found = _PATH.match(request.path)
        if request.cluster != self.cluster or found is None:
            return None
        kind = KINDS.get((found["group"], found["version"], found["plural"]))
        if kind is None:
            return None
        obj = self.objects.get((kind, found["ns"], found["name"]))
        if obj is None:
            error = not_found(GroupResource(found["group"], found["plural"]), found["name"])
            return ApiResponse(error.code, error.to_status())
        if request.method == "PATCH":
            patched = json_merge_patch(obj, json.loads(request.body or b"{}"))
            patched["metadata"]["resourceVersion"] = str(int(obj["metadata"].get("resourceVersion") or "1") + 1)
            obj.clear()
            obj.update(patched)
        elif request.method != "GET":
            return ApiResponse(405, {"kind": "Status", "status": "Failure", "reason": "MethodNotAllowed", "code": 405})
        return ApiResponse(200, json.loads(json.dumps(obj)))

    # -- the controller -----------------------------------------------------------------

    def reconcile(self) -> None:
        for (kind, namespace, name), applier in self.appliers.items():
            obj = self.objects[(kind, namespace, name)]
            requested = (obj["metadata"].get("annotations") or {}).get(REQUESTED_AT)
            if requested and requested != obj["status"].get("lastHandledReconcileAt"):
                obj["status"]["lastHandledReconcileAt"] = requested
                self._apply(obj, applier)
            elif applier.pending is not None:
                self._watch(obj, applier)

    def _apply(self, obj: dict[str, Any], applier: Applier) -> None:
        source = self.objects[("GitRepository", obj["metadata"]["namespace"], obj["spec"]["sourceRef"]["name"])]
        repo, branch = source["spec"]["url"].removeprefix("file://"), source["spec"]["ref"]["branch"]
        sha = _git(repo, "rev-parse", f"refs/heads/{branch}").strip()
        revision = f"{branch}@sha1:{sha}"
        source["status"] = {
            "artifact": {"revision": revision},
            "conditions": [_ready("True", "Succeeded", f"stored artifact for revision '{revision}'")],
        }
        images = _images(_git(repo, "show", f"{sha}:{applier.file}"))
        self._set_images(applier, images)
        obj["status"]["lastAttemptedRevision"] = revision
        obj["status"]["conditions"] = [_ready("Unknown", "Progressing", f"Reconciliation in progress for revision '{revision}'")]
        applier.pending = revision

    def _set_images(self, applier: Applier, images: dict[str, str]) -> None:
        deployment = self.server.deployment(self.cluster, applier.namespace, applier.deployment)
        containers = []
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            repository = str(container["image"]).rsplit(":", 1)[0].split("@")[0]
            if repository in images:
                containers.append({"name": container["name"], "image": images[repository]})
        if not containers:
            return
        body = json.dumps({"spec": {"template": {"spec": {"containers": containers}}}}).encode()
        self.server.api.handle(
            ApiRequest(
                "PATCH", f"/apis/apps/v1/namespaces/{applier.namespace}/deployments/{applier.deployment}", cluster=self.cluster,
                query={"fieldManager": ["kustomize-controller"]},
                headers={"content-type": "application/strategic-merge-patch+json"}, body=body,
            )
        )  # fmt: skip

    def _watch(self, obj: dict[str, Any], applier: Applier) -> None:
        deployment = self.server.deployment(self.cluster, applier.namespace, applier.deployment)
        status, spec = deployment.get("status") or {}, deployment["spec"]
        progressing: dict[str, Any] = next((c for c in status.get("conditions") or [] if c.get("type") == "Progressing"), {})
        revision = applier.pending
        if progressing.get("reason") == "ProgressDeadlineExceeded":
            message = f"timeout waiting for: [Deployment/{applier.namespace}/{applier.deployment} status: 'Failed']"
            obj["status"]["conditions"] = [_ready("False", "HealthCheckFailed", message)]
            applier.pending = None
            return
        observed = int(status.get("observedGeneration") or 0) >= int(deployment["metadata"].get("generation") or 0)
        replicas = int(spec.get("replicas") or 0)
        counts = (status.get("updatedReplicas") or 0, status.get("replicas") or 0, status.get("availableReplicas") or 0)
        if observed and counts == (replicas, replicas, replicas):
            obj["status"]["lastAppliedRevision"] = revision
            obj["status"]["conditions"] = [_ready("True", "ReconciliationSucceeded", f"Applied revision: {revision}")]
            applier.pending = None


def _ready(status: str, reason: str, message: str) -> dict[str, str]:
    return {"type": "Ready", "status": status, "reason": reason, "message": message, "lastTransitionTime": "2026-01-01T00:00:00Z"}


def _git(repo: str, *args: str) -> str:
    return subprocess.run(["git", "--git-dir", repo, *args], capture_output=True, text=True, check=True).stdout


def _images(text: str) -> dict[str, str]:
    """repository → image, from a kustomization's ``images:`` or Helm values' ``image.repository``/``image.tag``."""
    document = yaml.safe_load(text) or {}
    found: dict[str, str] = {}
    for entry in document.get("images") or []:
        name = entry.get("newName") or entry["name"]
        if entry.get("digest"):
            found[entry["name"]] = f"{name}@{entry['digest']}"
        elif entry.get("newTag") is not None:
            found[entry["name"]] = f"{name}:{entry['newTag']}"
    image = document.get("image")
    if isinstance(image, dict) and image.get("repository") and image.get("tag") is not None:
        found[str(image["repository"])] = f"{image['repository']}:{image['tag']}"
    return found
