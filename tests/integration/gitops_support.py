"""Real git repositories for the gitops tests: a bare "origin" made with the git CLI, and a second writer.

Everything runs over ``file://`` with the real ``git`` binary on the test side and dulwich on
opsbot's side, so a push, a fetch and a refused compare-and-swap are the real protocol.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

KUSTOMIZATION = """\
# The checkout app in production: opsbot changes only the newTag below.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: shop
resources:
  - deployment.yaml   # the Deployment, its Service and PDB
images:
  - name: registry.example.com/shop/cart
    newTag: "2.0.0"
  - name: registry.example.com/shop/checkout
    newTag: "1.4.1"  # deployed by opsbot
"""

VALUES = """\
# Helm values for checkout
replicaCount: 3
image:
  repository: registry.example.com/shop/checkout
  tag: 1.4.1   # keep in step with the chart's appVersion
  pullPolicy: IfNotPresent
"""

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Dana Dev",
    "GIT_AUTHOR_EMAIL": "dana@example.com",
    "GIT_COMMITTER_NAME": "Dana Dev",
    "GIT_COMMITTER_EMAIL": "dana@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
    "HOME": "/nonexistent",
}


def git(*args: str, cwd: Path | None = None) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True, env=GIT_ENV)
    return done.stdout.strip()


@dataclass
class Origin:
    """A bare repository and a work tree a colleague pushes from."""

    bare: Path
    work: Path

    @property
    def url(self) -> str:
        return f"file://{self.bare}"

    def head(self, branch: str = "main") -> str:
        return git("--git-dir", str(self.bare), "rev-parse", f"refs/heads/{branch}")

    def show(self, path: str, revision: str = "main") -> str:
        return subprocess.run(
            ["git", "--git-dir", str(self.bare), "show", f"{revision}:{path}"], capture_output=True, text=True, check=True
        ).stdout

    def message(self, revision: str = "main") -> str:
        return git("--git-dir", str(self.bare), "log", "-1", "--format=%B", revision)

    def author(self, revision: str = "main") -> str:
        return git("--git-dir", str(self.bare), "log", "-1", "--format=%an <%ae>|%cn <%ce>", revision)

    def count(self, branch: str = "main") -> int:
        return int(git("--git-dir", str(self.bare), "rev-list", "--count", branch))

    def colleague_pushes(self, path: str, text: str, message: str = "colleague: tune replicas") -> str:
        """A second writer: pull, change a file, commit and push (the branch moves under opsbot)."""
        git("pull", "-q", "origin", "main", cwd=self.work)
        target = self.work / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        git("add", "-A", cwd=self.work)
        git("commit", "-q", "-m", message, cwd=self.work)
        git("push", "-q", "origin", "HEAD:main", cwd=self.work)
        return self.head()


def make_origin(root: Path, files: dict[str, str]) -> Origin:
    bare = root / "deploy-config.git"
    work = root / "colleague"
    git("init", "-q", "--bare", "-b", "main", str(bare))
    git("clone", "-q", str(bare), str(work))
    git("checkout", "-q", "-b", "main", cwd=work)
    for path, text in files.items():
        target = work / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "initial config", cwd=work)
    git("push", "-q", "origin", "HEAD:main", cwd=work)
    return Origin(bare, work)
