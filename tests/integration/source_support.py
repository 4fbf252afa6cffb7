"""A service's source repository for "what's changing" tests: real git history, tags, a merged pull request on the fake GitHub."""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fakes.github import FakeGitHub
from tests.integration.gitops_support import git

OWNER, NAME = "acme", "checkout"
TOKEN = "ghp_source_token"


@dataclass
class SourceRepo:
    """``acme/checkout`` on the fake GitHub: v1.4.1, then a merged pull request and a direct commit, then v1.4.2."""

    github: FakeGitHub
    bare: Path
    work: Path

    def sha(self, ref: str) -> str:
        return git("--git-dir", str(self.bare), "rev-parse", f"{ref}^{{commit}}")

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(
            f"{self.github.url}/repos/{OWNER}/{NAME}{path}", data=json.dumps(body).encode() if body is not None else None, method=method
        )
        request.add_header("Authorization", f"Bearer {TOKEN}")
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def report_status(self, tag: str, state: str, context: str = "ci/test") -> None:
        self.call("POST", f"/statuses/{self.sha(tag)}", {"state": state, "context": context})

    def commit(self, message: str, *, author: str = "dana", tag: str | None = None, branch: str = "main") -> str:
        (self.work / "CHANGES").open("a").write(message + "\n")
        git("add", "CHANGES", cwd=self.work)
        git("-c", f"user.name={author}", "-c", f"user.email={author}@example.com", "commit", "-q", "--author",
            f"{author} <{author}@example.com>", "-m", message, cwd=self.work)  # fmt: skip
        if tag is not None:
            git("tag", tag, cwd=self.work)
        git("push", "-q", "origin", branch, *(["--tags"] if tag else []), cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work)


def make_source(tmp_path: Path, github: FakeGitHub, *, extra_commits: int = 0) -> SourceRepo:
    """Tags v1.4.1 and v1.4.2 with, between them, PR #1 "Add coupons" (2 commits by erin) and "Fix rounding" by dana."""
    bare, work = tmp_path / "source.git", tmp_path / "source-work"
    git("init", "-q", "--bare", "-b", "main", str(bare))
    git("clone", "-q", str(bare), str(work))
    github.add_repo(OWNER, NAME, bare)
    repo = SourceRepo(github, bare, work)
    repo.commit("Initial checkout service", tag="v1.4.1")
    git("checkout", "-q", "-b", "coupons", cwd=work)
    repo.commit("Coupons: model", author="erin", branch="coupons")
    repo.commit("Coupons: API", author="erin", branch="coupons")
    git("checkout", "-q", "main", cwd=work)
    pull = repo.call("POST", "/pulls", {"title": "Add coupons", "head": "coupons", "base": "main"})
    repo.call("PUT", f"/pulls/{pull['number']}/merge", {"sha": repo.sha("coupons"), "merge_method": "merge"})
    git("pull", "-q", "--ff-only", "origin", "main", cwd=work)
    for number in range(extra_commits):
        repo.commit(f"Tune cache {number}", author="frank")
    repo.commit("Fix rounding", tag="v1.4.2")
    return repo
