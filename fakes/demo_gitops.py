"""The demo's gitops services: a local bare repository per target and a Flux-like controller in the fake cluster.

For each ``gitops`` target of the example config, the demo writes the target's file (a kustomize
``images:`` entry, or Helm-style ``image.repository``/``image.tag``) into a fresh bare repository
with the real ``git`` CLI, creates the Deployment it describes in the fake Kubernetes API, and
registers a GitRepository and a Kustomization (``fakes/kubernetes/flux.py``) that apply the file's
image to that Deployment whenever opsbot asks Flux to reconcile. The config is rewritten to point
the target at the local repository and at that Kustomization.
"""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
from pathlib import Path

from bot.catalog.config import FluxSync, GitopsSync, GitopsTarget
from fakes.kubernetes import FakeKubernetesServer
from fakes.kubernetes.flux import FakeFlux

DEMO_NAMESPACE = "shop"
FLUX_NAMESPACE = "flux-system"
_ENV = {"GIT_AUTHOR_NAME": "demo", "GIT_AUTHOR_EMAIL": "demo@example.com", "GIT_COMMITTER_NAME": "demo",
        "GIT_COMMITTER_EMAIL": "demo@example.com", "HOME": "/nonexistent", "GIT_CONFIG_NOSYSTEM": "1"}  # fmt: skip


class DemoGitops:
    """Seeds repositories, Deployments and Flux objects; ``target_for`` gives each rewritten target."""

    def __init__(self, kubernetes: FakeKubernetesServer, workdir: Path, version: str) -> None:
        self._kubernetes = kubernetes
        self._workdir = workdir
        self._version = version
        self._flux: dict[str, FakeFlux] = {}

    def target_for(self, service: str, env: str, target: GitopsTarget) -> GitopsTarget:
        cluster = f"demo-{env}"
        self._kubernetes.add_cluster(cluster)
        name = f"{service}-{env}"
        bare = self._workdir / "gitops" / f"{hashlib.sha256(target.repo.encode()).hexdigest()[:8]}-{name}.git"
        image = target.kustomize_image or f"registry.example.com/{DEMO_NAMESPACE}/{service}"
        _seed(bare, target.branch, target.path, _file_text(target, image, self._version))
        self._kubernetes.add_deployment(
            cluster=cluster, namespace=DEMO_NAMESPACE, name=service, image=f"{image}:{self._version}", replicas=3,
            container=service, progress_deadline_seconds=60,
        )  # fmt: skip
        flux = self._flux.get(cluster) or self._flux.setdefault(cluster, FakeFlux(self._kubernetes, cluster))
        flux.add_git_repository(FLUX_NAMESPACE, name, repo_path=str(bare), branch=target.branch)
        flux.add_applier("Kustomization", FLUX_NAMESPACE, name, source=name, file=target.path, deployment=(DEMO_NAMESPACE, service))
        sync = GitopsSync(flux=FluxSync(kind="Kustomization", namespace=FLUX_NAMESPACE, name=name, context=cluster))
        return target.model_copy(update={"repo": str(bare), "sync": sync, "mode": "commit"})


def _file_text(target: GitopsTarget, image: str, version: str) -> str:
    if target.kustomize_image is not None:
        return (
            "# Deployed by Flux from this file; opsbot changes only the newTag below.\n"
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - deployment.yaml\n"
            f'images:\n  - name: {image}\n    newTag: "{version}"  # the running version\n'
        )
    return f'# Helm values\nimage:\n  repository: {image}\n  tag: "{version}"\nreplicaCount: 3\n'


def _seed(bare: Path, branch: str, path: str, text: str) -> None:
    def git(*args: str, cwd: Path | None = None) -> None:
        subprocess.run(["git", *args], cwd=cwd, env=_ENV, check=True, capture_output=True)

    bare.parent.mkdir(parents=True, exist_ok=True)
    git("init", "-q", "--bare", "-b", "main", str(bare))
    with tempfile.TemporaryDirectory(prefix="opsbot-demo-seed-") as work:
        tree = Path(work)
        git("init", "-q", "-b", "main", cwd=tree)
        (tree / path).parent.mkdir(parents=True, exist_ok=True)
        (tree / path).write_text(text)
        git("add", "-A", cwd=tree)
        git("commit", "-q", "-m", "initial deploy config", cwd=tree)
        git("push", "-q", str(bare), f"HEAD:refs/heads/{branch}", cwd=tree)
