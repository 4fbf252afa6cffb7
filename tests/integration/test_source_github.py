"""The GitHub source client against the fake GitHub over HTTP, on a real repository with tags and a merged pull request."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.backends.source.github import RefNotFound, SourceClient, SourceUnreachable
from fakes.github import FAKE_GITHUB_LOGIN, FakeGitHub
from tests.integration.source_support import TOKEN, SourceRepo, make_source


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub(token=TOKEN) as fake:
        yield fake


@pytest.fixture
def source(tmp_path: Path, github: FakeGitHub) -> SourceRepo:
    return make_source(tmp_path, github)


def client(github: FakeGitHub) -> SourceClient:
    return SourceClient(github.url, "acme/checkout", TOKEN)


def test_compare_lists_the_commits_between_two_tags_oldest_first(github: FakeGitHub, source: SourceRepo) -> None:
    comparison = client(github).compare("v1.4.1", "v1.4.2")
    assert comparison.status == "ahead"
    assert comparison.total_commits == 4
    assert [commit.title for commit in comparison.commits] == [
        "Coupons: model", "Coupons: API", "Merge pull request #1 from acme/coupons", "Fix rounding",
    ]  # fmt: skip
    assert comparison.commits[0].author == "erin"
    assert comparison.html_url.endswith("/acme/checkout/compare/v1.4.1...v1.4.2")


def test_compare_the_other_way_is_behind(github: FakeGitHub, source: SourceRepo) -> None:
    comparison = client(github).compare("v1.4.2", "v1.4.1")
    assert (comparison.status, comparison.ahead_by, comparison.behind_by) == ("behind", 0, 4)


def test_an_unknown_tag_is_404(github: FakeGitHub, source: SourceRepo) -> None:
    with pytest.raises(RefNotFound, match="404"):
        client(github).compare("v1.4.1", "v9.9.9")


def test_the_pull_request_of_a_commit_is_found_merged(github: FakeGitHub, source: SourceRepo) -> None:
    pulls = client(github).pulls_of(source.sha("coupons"))
    assert [(pull.number, pull.title, pull.author, pull.merged) for pull in pulls] == [(1, "Add coupons", FAKE_GITHUB_LOGIN, True)]
    assert client(github).pulls_of(source.sha("v1.4.2")) == []


def test_checks_fold_statuses_and_check_runs(github: FakeGitHub, source: SourceRepo) -> None:
    assert client(github).checks("v1.4.2").state == "none"
    source.report_status("v1.4.2", "pending")
    assert client(github).checks("v1.4.2").state == "pending"
    source.report_status("v1.4.2", "success")
    assert client(github).checks("v1.4.2").state == "success"
    source.call("POST", "/check-runs", {"name": "build", "head_sha": source.sha("v1.4.2"), "status": "completed", "conclusion": "failure"})
    checks = client(github).checks("v1.4.2")
    assert (checks.state, checks.failing, checks.sha) == ("failure", ("build: failure",), source.sha("v1.4.2"))


def test_a_github_that_does_not_answer_is_unreachable(tmp_path: Path) -> None:
    with FakeGitHub(token=TOKEN) as fake:
        url = fake.url
    with pytest.raises(SourceUnreachable, match="could not reach GitHub for acme/checkout"):
        SourceClient(url, "acme/checkout", TOKEN).compare("v1.4.1", "v1.4.2")
