"""Commit statuses and check runs: what CI reported about a commit, and the combined state GitHub derives.

``POST /repos/{o}/{r}/statuses/{sha}`` records a status (``error``, ``failure``, ``pending``,
``success``; 422 otherwise); ``GET …/commits/{ref}/status`` answers the combined state: ``failure``
if the latest status of any context is ``error`` or ``failure``, ``pending`` if there is none or
any is ``pending``, else ``success``. ``POST …/check-runs`` and ``GET …/commits/{ref}/check-runs``
do the same for GitHub Actions' check runs (GitHub requires a GitHub App for the POST; the fake
takes any valid token, as tests are the CI here).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fakes.github.compare import resolve
from fakes.github.core import FakeRepo, GitHubError, GitHubState
from fakes.json_http import JsonReply, JsonRequest

STATES = ("error", "failure", "pending", "success")
CHECK_STATUSES = ("queued", "in_progress", "completed")
CONCLUSIONS = ("action_required", "cancelled", "failure", "neutral", "success", "skipped", "stale", "timed_out")


@dataclass
class ChecksStore:
    """Statuses and check runs by (repository, commit sha), newest last."""

    statuses: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    check_runs: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    next_id: int = 1

    def register(self, state: GitHubState) -> None:
        state.add_route("POST", r"/statuses/(?P<sha>[0-9a-f]{40})", self.create_status)
        state.add_route("GET", r"/commits/(?P<ref>[^/]+)/status", self.combined_status)
        state.add_route("POST", r"/check-runs", self.create_check_run)
        state.add_route("GET", r"/commits/(?P<ref>[^/]+)/check-runs", self.list_check_runs)

    def create_status(self, state: GitHubState, repo: FakeRepo, request: JsonRequest, params: dict[str, str]) -> JsonReply:
        body = request.body if isinstance(request.body, dict) else {}
        if body.get("state") not in STATES:
            raise GitHubError(422, "Validation Failed", [{"resource": "Status", "field": "state", "code": "invalid"}])
        sha = _commit(repo, params["sha"])
        status = {
            "id": self._id(), "state": body["state"], "context": str(body.get("context") or "default"),
            "description": body.get("description"), "target_url": body.get("target_url"),
        }  # fmt: skip
        self.statuses.setdefault((repo.slug, sha), []).append(status)
        return JsonReply(201, status)

    def combined_status(self, state: GitHubState, repo: FakeRepo, _request: JsonRequest, params: dict[str, str]) -> JsonReply:
        sha = resolve(repo, params["ref"])
        latest: dict[str, dict[str, Any]] = {}
        for status in self.statuses.get((repo.slug, sha), []):
            latest[status["context"]] = status
        states = [status["state"] for status in latest.values()]
        combined = (
            "failure" if any(item in ("error", "failure") for item in states)
            else "pending" if not states or "pending" in states
            else "success"
        )  # fmt: skip
        body = {"state": combined, "sha": sha, "total_count": len(states), "statuses": list(latest.values())}
        return JsonReply(200, body)

    def create_check_run(self, state: GitHubState, repo: FakeRepo, request: JsonRequest, _params: dict[str, str]) -> JsonReply:
        body = request.body if isinstance(request.body, dict) else {}
        status = body.get("status", "queued")
        conclusion = body.get("conclusion")
        if not body.get("name") or status not in CHECK_STATUSES or (conclusion is not None and conclusion not in CONCLUSIONS):
            raise GitHubError(422, "Validation Failed", [{"resource": "CheckRun", "code": "invalid"}])
        if status == "completed" and conclusion is None:
            raise GitHubError(422, "Validation Failed", [{"resource": "CheckRun", "field": "conclusion", "code": "missing_field"}])
        sha = _commit(repo, str(body.get("head_sha") or ""))
        run = {"id": self._id(), "name": body["name"], "head_sha": sha, "status": status, "conclusion": conclusion}
        self.check_runs.setdefault((repo.slug, sha), []).append(run)
        return JsonReply(201, run)

    def list_check_runs(self, state: GitHubState, repo: FakeRepo, _request: JsonRequest, params: dict[str, str]) -> JsonReply:
        sha = resolve(repo, params["ref"])
        runs = self.check_runs.get((repo.slug, sha), [])
        return JsonReply(200, {"total_count": len(runs), "check_runs": runs})

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id - 1


def register(state: GitHubState) -> None:
    ChecksStore().register(state)


def _commit(repo: FakeRepo, sha: str) -> str:
    done = repo.git("cat-file", "-e", f"{sha}^{{commit}}", check=False) if len(sha) == 40 else None
    if done is None or done.returncode != 0:
        raise GitHubError(422, f"No commit found for SHA: {sha}")
    return sha
