"""``mode: pull_request`` against the fake GitHub API (fakes/github) over HTTP, on a real bare repository."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.backends import Backends
from bot.backends.gitops.change_actions import SetImage, SetImageArgs
from bot.backends.gitops.commit_messages import trailers
from bot.backends.gitops.github import GitHubClient
from bot.catalog.actions import StepContext
from bot.catalog.config import Environment, GitopsTarget, OpsbotConfig, PullRequestMode, Service
from bot.errors import ActionFailed
from bot.settings import Settings
from fakes.github import FakeGitHub
from tests.integration.gitops_support import KUSTOMIZATION, Origin, git, make_origin

PATH = "apps/checkout/production/kustomization.yaml"
TOKEN = "ghp_example_token"


@dataclass
class HookedContext(StepContext):
    """A context whose waits run ``on_wait`` (a person merging on GitHub while opsbot waits)."""

    on_wait: Callable[[], None] = field(default=lambda: None)

    def wait(self, seconds: float) -> None:
        self.on_wait()
        super().wait(0.001)


@pytest.fixture
def origin(tmp_path: Path) -> Origin:
    return make_origin(tmp_path, {PATH: KUSTOMIZATION})


@pytest.fixture
def github(origin: Origin) -> Iterator[FakeGitHub]:
    with FakeGitHub(token=TOKEN) as fake:
        fake.add_repo("shop", "deploy-config", origin.bare)
        yield fake


def pr_target(origin: Origin, github: FakeGitHub, merge: str = "opsbot") -> GitopsTarget:
    return GitopsTarget(
        repo=origin.url, path=PATH, kustomize_image="registry.example.com/shop/checkout", mode="pull_request",
        github_repo="shop/deploy-config", pull_request=PullRequestMode(merge=merge, api_url=github.url),
    )  # fmt: skip


@pytest.fixture
def make_ctx(tmp_path: Path) -> Iterator[Callable[..., HookedContext]]:
    made: list[Backends] = []

    def build(target: GitopsTarget, *, token: str = TOKEN, on_wait: Callable[[], None] = lambda: None) -> HookedContext:
        settings = Settings(OPSBOT_GITHUB_TOKEN=SecretStr(token), OPSBOT_GIT_CACHE_DIR=tmp_path / "cache")
        backends = Backends(OpsbotConfig(services={"checkout": Service(environments={"production": Environment(gitops=target)})}), settings)
        made.append(backends)
        return HookedContext(
            request_id=12, service="checkout", env="production", target=target, actor_id="U111", actor_name="alice",
            backends=backends, progress=lambda _line: None, cancel_event=threading.Event(), deadline=time.monotonic() + 30,
            runbook="deploy", approvers=(("U222", "bob"),), on_wait=on_wait,
        )  # fmt: skip

    yield build
    for backends in made:
        backends.gitops.close()


def test_opsbot_opens_the_pull_request_and_merges_it_once_approved(
    origin: Origin, github: FakeGitHub, make_ctx: Callable[..., HookedContext]
) -> None:
    before = origin.head()
    result = SetImage().run(make_ctx(pr_target(origin, github)), SetImageArgs(tag="1.4.2"))

    pull = github.state.repos["shop/deploy-config"].pulls[1]
    assert result.data["pull_request"] == pull["html_url"] and pull["merged"]
    assert pull["title"] == "deploy checkout 1.4.2 to production (opsbot request #12)"
    assert pull["head"]["ref"].startswith("opsbot/request-12-")
    merge = origin.head()
    assert result.data["commit"] == merge
    assert git("--git-dir", str(origin.bare), "rev-parse", f"{merge}^1") == before
    ours = git("--git-dir", str(origin.bare), "rev-parse", f"{merge}^2")
    assert trailers(origin.message(ours))["Approved-by"] == ["bob (Slack U222)"]
    assert 'newTag: "1.4.2"' in origin.show(PATH)


def test_merge_wait_mode_waits_until_a_person_merges(origin: Origin, github: FakeGitHub, make_ctx: Callable[..., HookedContext]) -> None:
    client = GitHubClient(github.url, "shop/deploy-config", TOKEN)

    def person_merges() -> None:
        pull = github.state.repos["shop/deploy-config"].pulls[1]
        if not pull["merged"]:
            client.merge(1, sha=pull["head"]["sha"], method="merge", title="reviewed and merged", message="")

    result = SetImage().run(make_ctx(pr_target(origin, github, merge="wait"), on_wait=person_merges), SetImageArgs(tag="1.4.2"))

    assert result.data["commit"] == origin.head()
    assert origin.message().startswith("reviewed and merged")


def test_a_protected_branch_refusing_the_merge_is_a_clear_failure(
    origin: Origin, github: FakeGitHub, make_ctx: Callable[..., HookedContext]
) -> None:
    github.state.repos["shop/deploy-config"].protected = True
    before = origin.head()
    with pytest.raises(ActionFailed, match=r"answered 405: At least 1 approving review is required"):
        SetImage().run(make_ctx(pr_target(origin, github)), SetImageArgs(tag="1.4.2"))
    assert origin.head() == before


def test_a_bad_github_token_is_refused_without_showing_it(
    origin: Origin, github: FakeGitHub, make_ctx: Callable[..., HookedContext]
) -> None:
    with pytest.raises(ActionFailed, match=r"refused opsbot's token \(401: Bad credentials\)") as caught:
        SetImage().run(make_ctx(pr_target(origin, github), token="ghp_wrong"), SetImageArgs(tag="1.4.2"))
    assert "ghp_wrong" not in caught.value.user_message


def test_the_fake_answers_422_for_an_unknown_head_and_409_for_a_moved_head(origin: Origin, github: FakeGitHub) -> None:
    client = GitHubClient(github.url, "shop/deploy-config", TOKEN)
    with pytest.raises(ActionFailed, match=r"422: Validation Failed \(invalid\)"):
        client.create_pull(title="x", body="", head="no-such-branch", base="main")
    git("push", "-q", "origin", "HEAD:refs/heads/feature", cwd=origin.work)
    pull = client.create_pull(title="x", body="", head="feature", base="main")
    with pytest.raises(ActionFailed, match=r"422: Validation Failed.*A pull request already exists for shop:feature"):
        client.create_pull(title="again", body="", head="feature", base="main")
    with pytest.raises(ActionFailed, match="409: Head branch was modified"):
        client.merge(int(pull["number"]), sha="0" * 40, method="merge", title="t", message="")
