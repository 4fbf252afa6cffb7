"""A fake GitHub REST API over real bare git repositories (pull requests now; more areas as modules)."""

from fakes.github.core import FAKE_GITHUB_LOGIN, FakeRepo, GitHubError, GitHubState
from fakes.github.server import FakeGitHub

__all__ = ["FAKE_GITHUB_LOGIN", "FakeGitHub", "FakeRepo", "GitHubError", "GitHubState"]
