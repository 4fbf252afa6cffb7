"""Pull requests: create (``POST /pulls``), read (``GET /pulls/{n}``) and merge (``PUT /pulls/{n}/merge``).

Merges are real git: a merge commit whose tree ``git merge-tree --write-tree`` computes, with the
base branch moved by a compare-and-swap ``update-ref``. The answers follow GitHub's: 201 with the
pull request, 422 ``Validation Failed`` (unknown head or base, a pull request already open for the
head), 409 when the ``sha`` given is not the head any more, 405 when it is not mergeable
(conflict, already merged, closed, or a protected branch that wants a review).
"""

from __future__ import annotations

from typing import Any

from fakes.github.core import FakeRepo, GitHubError, GitHubState
from fakes.json_http import JsonReply, JsonRequest


def register(state: GitHubState) -> None:
    state.add_route("POST", r"/pulls", create_pull)
    state.add_route("GET", r"/pulls/(?P<number>\d+)", get_pull)
    state.add_route("PUT", r"/pulls/(?P<number>\d+)/merge", merge_pull)


def create_pull(state: GitHubState, repo: FakeRepo, request: JsonRequest, _params: dict[str, str]) -> JsonReply:
    body = request.body if isinstance(request.body, dict) else {}
    head, base = str(body.get("head") or ""), str(body.get("base") or "")
    if not body.get("title"):
        raise GitHubError(422, "Validation Failed", [{"resource": "PullRequest", "field": "title", "code": "missing_field"}])
    head_sha, base_sha = repo.branch_sha(head), repo.branch_sha(base)
    if head_sha is None:
        raise GitHubError(422, "Validation Failed", [{"resource": "PullRequest", "field": "head", "code": "invalid"}])
    if base_sha is None:
        raise GitHubError(422, "Validation Failed", [{"resource": "PullRequest", "field": "base", "code": "invalid"}])
    if any(pull["head"]["ref"] == head and pull["state"] == "open" for pull in repo.pulls.values()):
        message = f"A pull request already exists for {repo.owner}:{head}."
        raise GitHubError(422, "Validation Failed", [{"resource": "PullRequest", "code": "custom", "message": message}])
    number = state.next_number
    state.next_number += 1
    pull: dict[str, Any] = {
        "number": number, "state": "open", "title": body["title"], "body": body.get("body") or "",
        "html_url": state.html_url(repo, "pull", number), "url": f"{state.base_url()}/repos/{repo.slug}/pulls/{number}",
        "head": {"ref": head, "sha": head_sha}, "base": {"ref": base, "sha": base_sha},
        "merged": False, "mergeable": True, "merge_commit_sha": None, "merged_at": None,
        "user": {"login": state.caller, "type": "User"},
    }  # fmt: skip
    repo.pulls[number] = pull
    return JsonReply(201, pull)


def get_pull(state: GitHubState, repo: FakeRepo, _request: JsonRequest, params: dict[str, str]) -> JsonReply:
    return JsonReply(200, _pull(repo, params))


def merge_pull(state: GitHubState, repo: FakeRepo, request: JsonRequest, params: dict[str, str]) -> JsonReply:
    pull = _pull(repo, params)
    body = request.body if isinstance(request.body, dict) else {}
    if pull["merged"] or pull["state"] != "open":
        raise GitHubError(405, "Pull Request is not mergeable")
    head_sha = repo.branch_sha(pull["head"]["ref"])
    if body.get("sha") and body["sha"] != head_sha:
        raise GitHubError(409, "Head branch was modified. Review and try the merge again.")
    if repo.protected:
        raise GitHubError(405, "At least 1 approving review is required by reviewers with write access.")
    base_ref = pull["base"]["ref"]
    base_sha = repo.branch_sha(base_ref)
    assert head_sha is not None and base_sha is not None
    tree = repo.git("merge-tree", "--write-tree", base_sha, head_sha, check=False)
    if tree.returncode != 0:
        raise GitHubError(405, "Merge conflict")
    title = str(body.get("commit_title") or f"Merge pull request #{pull['number']} from {repo.owner}/{pull['head']['ref']}")
    message = title + ("\n\n" + str(body["commit_message"]) if body.get("commit_message") else "")
    merged = repo.git("commit-tree", tree.stdout.split()[0], "-p", base_sha, "-p", head_sha, "-m", message).stdout.strip()
    repo.git("update-ref", f"refs/heads/{base_ref}", merged, base_sha)
    pull.update({"merged": True, "state": "closed", "merge_commit_sha": merged, "merged_at": "2026-01-01T00:00:00Z"})
    return JsonReply(200, {"sha": merged, "merged": True, "message": "Pull Request successfully merged"})


def _pull(repo: FakeRepo, params: dict[str, str]) -> dict[str, Any]:
    pull = repo.pulls.get(int(params["number"]))
    if pull is None:
        raise GitHubError(404, "Not Found")
    return pull
