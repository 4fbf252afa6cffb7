"""A fake GitHub REST API over real bare git repositories (pull requests now; more areas as modules)."""

from fakes.github.core import FakeRepo, GitHubError, GitHubState
from fakes.github.server import FakeGitHub

__all__ = ["FakeGitHub", "FakeRepo", "GitHubError", "GitHubState"]
