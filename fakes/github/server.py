"""The fake GitHub API server: the core's state and routes, each API area registered, served over HTTP."""

from __future__ import annotations

from pathlib import Path

from fakes.github import actions, checks, compare, pulls
from fakes.github.core import FakeRepo, GitHubState
from fakes.json_http import JsonHttpServer, JsonReply, JsonRequest

AREAS = (pulls, actions, compare, checks)
"""Each area module has ``register(state)``; add workflow dispatch, compare, statuses here."""


class FakeGitHub:
    """``with FakeGitHub(token=…) as github: github.add_repo("shop", "deploy-config", bare_path)``."""

    def __init__(self, *, token: str = "github-token") -> None:
        self.http = JsonHttpServer(self._handle, name="github")
        self.state = GitHubState(token, lambda: self.http.url)
        for area in AREAS:
            area.register(self.state)

    def _handle(self, request: JsonRequest) -> JsonReply:
        return self.state.handle(request)

    def add_repo(self, owner: str, name: str, bare: Path, *, protected: bool = False) -> FakeRepo:
        repo = FakeRepo(owner, name, bare, protected=protected)
        self.state.repos[repo.slug] = repo
        return repo

    @property
    def url(self) -> str:
        return self.http.url

    def __enter__(self) -> FakeGitHub:
        self.http.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.stop()
