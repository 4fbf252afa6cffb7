"""Argo CD Applications as the fake keeps them, and how a sync operation moves them along.

Shapes follow Argo CD's ``v1alpha1.Application``: ``status.sync`` (``status``, ``revision``),
``status.health`` (``status``, ``message``), ``status.operationState`` (``operation.sync.revision``,
``phase``, ``message``, ``syncResult.revision``, ``startedAt``, ``finishedAt``) and
``status.resources``. A sync moves one stage per read of the app, so tests wait on conditions
and never on time: OutOfSync/Running → Syncing → Synced (health Progressing) → Healthy, or
Degraded when the applied file names a broken image. A revision git cannot resolve ends in
phase Error, as Argo CD's "unable to resolve … to a commit SHA".
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from typing import Any

STAGES = ("requested", "syncing", "applied", "settled")


@dataclass
class FakeApplication:
    """One app: where its manifests live, which image strings never become healthy, and its live state."""

    name: str
    repo_path: str
    path: str
    target_revision: str = "main"
    namespace: str = "argocd"
    project: str = "default"
    broken_images: set[str] = field(default_factory=set)
    deployment: tuple[str, str] = ("shop", "checkout")
    synced_revision: str = ""
    health: str = "Healthy"
    health_message: str = ""
    operation: dict[str, Any] | None = None
    stage: str = "settled"
    fail_next_sync: str | None = None
    sync_requests: list[dict[str, Any]] = field(default_factory=list)

    # -- what the API returns -------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        head = git_rev_parse(self.repo_path, self.target_revision) or ""
        sync_status = "Synced" if self.synced_revision == head and self.stage in ("applied", "settled") else "OutOfSync"
        status: dict[str, Any] = {
            "sync": {
                "status": sync_status,
                "revision": self.synced_revision,
                "comparedTo": {"source": self._source(), "destination": self._destination()},
            },
            "health": {"status": self.health, **({"message": self.health_message} if self.health_message else {})},
            "resources": [
                {
                    "group": "apps", "version": "v1", "kind": "Deployment", "namespace": self.deployment[0],
                    "name": self.deployment[1], "status": sync_status,
                    "health": {"status": self.health, **({"message": self.health_message} if self.health_message else {})},
                }
            ],
        }  # fmt: skip
        if self.operation is not None:
            status["operationState"] = self.operation
        return {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {"project": self.project, "source": self._source(), "destination": self._destination()},
            "status": status,
        }

    def _source(self) -> dict[str, str]:
        return {"repoURL": f"file://{self.repo_path}", "path": self.path.rsplit("/", 1)[0], "targetRevision": self.target_revision}

    def _destination(self) -> dict[str, str]:
        return {"server": "https://kubernetes.default.svc", "namespace": self.deployment[0]}

    # -- transitions ----------------------------------------------------------------

    def start_sync(self, revision: str | None, now: str) -> None:
        wanted = revision or self.target_revision
        self.operation = {
            "operation": {"sync": {"revision": wanted}, "initiatedBy": {"username": "opsbot"}},
            "phase": "Running",
            "message": "waiting for completion of hook and sync",
            "startedAt": now,
        }
        self.stage = "requested"

    def advance(self, now: str) -> None:
        """One step of the running operation (called on each read of the app)."""
        if self.operation is None or self.stage == "settled":
            return
        wanted = str(self.operation["operation"]["sync"]["revision"])
        if self.stage == "requested":
            self.stage = "syncing"
            self.operation["message"] = "syncing"
            return
        if self.stage == "syncing":
            sha = git_rev_parse(self.repo_path, wanted)
            if sha is None:
                self._finish("Error", f"rpc error: code = Unknown desc = unable to resolve '{wanted}' to a commit SHA", now)
                return
            if self.fail_next_sync is not None:
                message, self.fail_next_sync = self.fail_next_sync, None
                self._finish("Failed", f"one or more objects failed to apply, reason: {message}", now, sha)
                return
            self.synced_revision = sha
            self.health, self.health_message = "Progressing", "Waiting for rollout to finish: 1 old replicas are pending termination..."
            self.operation["syncResult"] = {"revision": sha, "resources": [{"kind": "Deployment", "name": self.deployment[1]}]}
            self._finish("Succeeded", "successfully synced (all tasks run)", now, sha)
            self.stage = "applied"
            return
        text = git_show(self.repo_path, self.synced_revision, self.path) or ""
        broken = next((image for image in self.broken_images if image in text), None)
        if broken is not None:
            self.health = "Degraded"
            self.health_message = f'Deployment "{self.deployment[1]}" exceeded its progress deadline'
        else:
            self.health, self.health_message = "Healthy", ""
        self.stage = "settled"

    def _finish(self, phase: str, message: str, now: str, sha: str | None = None) -> None:
        assert self.operation is not None
        self.operation.update({"phase": phase, "message": message, "finishedAt": now})
        if sha is not None:
            self.operation.setdefault("syncResult", {"revision": sha})
        if phase != "Succeeded":
            self.stage = "settled"


def git_rev_parse(repo_path: str, revision: str) -> str | None:
    done = subprocess.run(
        ["git", "-C", repo_path, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}"], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() or None if done.returncode == 0 else None


def git_show(repo_path: str, revision: str, path: str) -> str | None:
    if not revision:
        return None
    done = subprocess.run(["git", "-C", repo_path, "show", f"{revision}:{path}"], capture_output=True, text=True, check=False)
    return done.stdout if done.returncode == 0 else None
