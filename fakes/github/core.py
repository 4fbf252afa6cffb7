"""The fake GitHub REST API's core: routing, token auth, and the repositories it serves (real bare git repos).

API areas live in their own modules (``pulls`` now) and register routes here, so later areas
(workflow dispatch, compare, commit statuses) add a module without touching this one. Errors
carry GitHub's shape: ``{"message": …, "documentation_url": …}`` plus ``errors`` on a 422.
"""

from __future__ import annotations

import re
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fakes.json_http import JsonReply, JsonRequest

DOCS = "https://docs.github.com/rest"

Route = Callable[["GitHubState", "FakeRepo", JsonRequest, dict[str, str]], JsonReply]


class GitHubError(Exception):
    """An answer other than 2xx, raised by an area's handler."""

    def __init__(self, status: int, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.errors = status, message, errors

    def reply(self) -> JsonReply:
        body: dict[str, Any] = {"message": self.message, "documentation_url": DOCS}
        if self.errors is not None:
            body["errors"] = self.errors
        return JsonReply(self.status, body)


@dataclass
class FakeRepo:
    """One repository: its bare git directory and what the areas keep about it."""

    owner: str
    name: str
    bare: Path
    protected: bool = False
    """Branch protection demanding a review: merges answer 405 as GitHub does."""
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def slug(self) -> str:
        return f"{self.owner}/{self.name}"

    def git(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", "--git-dir", str(self.bare), *args], capture_output=True, text=True, check=check,
            env={"GIT_COMMITTER_NAME": "GitHub", "GIT_COMMITTER_EMAIL": "noreply@github.com",
                 "GIT_AUTHOR_NAME": "GitHub", "GIT_AUTHOR_EMAIL": "noreply@github.com", "HOME": "/nonexistent"},
        )  # fmt: skip

    def branch_sha(self, branch: str) -> str | None:
        done = self.git("rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False)
        return done.stdout.strip() or None if done.returncode == 0 else None


FAKE_GITHUB_LOGIN = "release-bot"
"""The account behind the fake's token: the author of the pull requests opened with it."""


class GitHubState:
    """Repositories, tokens and routes; ``handle`` answers one request."""

    def __init__(self, token: str, base_url: Callable[[], str], *, login: str = FAKE_GITHUB_LOGIN) -> None:
        self.tokens = {token: login}
        self.caller = login
        """The login of the token the request being answered came with (what GitHub records as a pull request's ``user``)."""
        self.repos: dict[str, FakeRepo] = {}
        self.routes: list[tuple[str, re.Pattern[str], Route]] = []
        self.lock = threading.Lock()
        self.base_url = base_url
        self.next_number = 1

    def add_route(self, method: str, pattern: str, route: Route) -> None:
        """``pattern`` is the path after ``/repos/{owner}/{repo}``, with named groups."""
        self.routes.append((method, re.compile(r"^/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)" + pattern + "$"), route))

    def html_url(self, repo: FakeRepo, kind: str, number: int) -> str:
        return f"{self.base_url()}/{repo.slug}/{kind}/{number}"

    def handle(self, request: JsonRequest) -> JsonReply:
        auth = request.header("authorization") or ""
        token = auth.split(" ", 1)[1].strip() if " " in auth else ""
        if token not in self.tokens:
            return GitHubError(401, "Bad credentials").reply()
        login = self.tokens[token]
        for method, pattern, route in self.routes:
            found = pattern.match(request.path)
            if found is None:
                continue
            repo = self.repos.get(f"{found['owner']}/{found['repo']}")
            if repo is None:
                return GitHubError(404, "Not Found").reply()
            if method != request.method:
                continue
            with self.lock:
                self.caller = login
                try:
                    return route(self, repo, request, found.groupdict())
                except GitHubError as error:
                    return error.reply()
        return GitHubError(404, "Not Found").reply()
