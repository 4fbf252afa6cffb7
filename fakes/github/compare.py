"""Compare two refs and the pull requests of a commit, read from the repository's real git history.

``GET /repos/{o}/{r}/compare/{base}...{head}`` answers as GitHub does: ``status`` (``ahead``,
``behind``, ``diverged``, ``identical``), ``ahead_by``/``behind_by``, ``total_commits``, the
commits reachable from head and not from base (oldest first, at most 250, as GitHub caps them),
each with ``sha``, ``commit.message``, ``commit.author`` and ``author.login``, and ``html_url``;
404 ``Not Found`` when either ref does not resolve. ``GET …/commits/{sha}/pulls`` lists the pull
requests that contain a commit (its merge commit, or one of its head's commits).

Logins: the fake has no accounts, so a commit's ``author.login`` is its author email's local
part (GitHub maps the email to the account; ``null`` when none matches).
"""

from __future__ import annotations

from typing import Any

from fakes.github.core import FakeRepo, GitHubError, GitHubState
from fakes.json_http import JsonReply, JsonRequest

MAX_COMPARE_COMMITS = 250
"""GitHub returns at most 250 commits in a comparison; ``total_commits`` still counts them all."""


def register(state: GitHubState) -> None:
    state.add_route("GET", r"/compare/(?P<base>[^/]+?)\.\.\.(?P<head>[^/]+)", compare)
    state.add_route("GET", r"/commits/(?P<sha>[0-9a-fA-F]{4,40})/pulls", pulls_of_commit)


def compare(state: GitHubState, repo: FakeRepo, _request: JsonRequest, params: dict[str, str]) -> JsonReply:
    base_sha, head_sha = resolve(repo, params["base"]), resolve(repo, params["head"])
    ahead = _rev_list(repo, f"{base_sha}..{head_sha}")
    behind = _rev_list(repo, f"{head_sha}..{base_sha}")
    status = "identical" if base_sha == head_sha else "ahead" if not behind else "behind" if not ahead else "diverged"
    merge_base = repo.git("merge-base", base_sha, head_sha, check=False).stdout.strip() or base_sha
    slug, site = repo.slug, state.base_url()
    body = {
        "url": f"{site}/repos/{slug}/compare/{params['base']}...{params['head']}",
        "html_url": f"{site}/{slug}/compare/{params['base']}...{params['head']}",
        "permalink_url": f"{site}/{slug}/compare/{slug.split('/')[0]}:{base_sha[:7]}...{slug.split('/')[0]}:{head_sha[:7]}",
        "base_commit": commit_json(state, repo, base_sha),
        "merge_base_commit": commit_json(state, repo, merge_base),
        "status": status,
        "ahead_by": len(ahead),
        "behind_by": len(behind),
        "total_commits": len(ahead),
        "commits": [commit_json(state, repo, sha) for sha in ahead[:MAX_COMPARE_COMMITS]],
        "files": [],
    }
    return JsonReply(200, body)


def pulls_of_commit(state: GitHubState, repo: FakeRepo, _request: JsonRequest, params: dict[str, str]) -> JsonReply:
    sha = resolve(repo, params["sha"])
    found = [pull for pull in repo.pulls.values() if _contains(repo, pull, sha)]
    return JsonReply(200, sorted(found, key=lambda pull: int(pull["number"])))


def resolve(repo: FakeRepo, ref: str) -> str:
    """The commit a branch, tag or sha names; 404 as GitHub answers for an unknown ref."""
    if ref.startswith("-"):
        raise GitHubError(404, "Not Found")
    done = repo.git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
    if done.returncode != 0 or not done.stdout.strip():
        raise GitHubError(404, "Not Found")
    return done.stdout.strip()


def commit_json(state: GitHubState, repo: FakeRepo, sha: str) -> dict[str, Any]:
    shown = repo.git("show", "-s", "--format=%H%x00%an%x00%ae%x00%aI%x00%B", sha).stdout
    full, name, email, date, message = shown.split("\x00", 4)
    login = email.split("@", 1)[0] if "@" in email else None
    return {
        "sha": full,
        "html_url": f"{state.base_url()}/{repo.slug}/commit/{full}",
        "commit": {"author": {"name": name, "email": email, "date": date}, "message": message.rstrip("\n")},
        "author": {"login": login} if login else None,
    }


def _rev_list(repo: FakeRepo, revisions: str) -> list[str]:
    return repo.git("rev-list", "--reverse", revisions).stdout.split()


def _contains(repo: FakeRepo, pull: dict[str, Any], sha: str) -> bool:
    if pull.get("merge_commit_sha") == sha:
        return True
    base, head = pull["base"]["sha"], pull["head"]["sha"]
    return sha in _rev_list(repo, f"{base}..{head}")
