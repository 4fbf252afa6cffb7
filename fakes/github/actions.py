"""GitHub Actions: workflows, ``workflow_dispatch`` and the runs it starts, which progress over (real) time.

Served as GitHub documents them: ``GET /actions/workflows/{id}`` (a numeric id or the file name),
``POST /actions/workflows/{id}/dispatches`` (204; 404 for an unknown workflow; 422 for a ref that
does not exist, a workflow without a ``workflow_dispatch`` trigger, an undeclared input or a
missing required one), ``GET /actions/workflows/{id}/runs`` (filters ``event``, ``branch``,
``status``, ``created=>=<time>``; newest first), ``GET /actions/runs/{id}`` and
``POST /actions/runs/{id}/cancel`` (202; 409 once completed).

A run is ``queued`` for ``queued_seconds``, ``in_progress`` for ``run_seconds`` (None: until it is
cancelled), then ``completed`` with the conclusion the test gave its workflow
(``workflows(github.state).add(…, conclusion="failure")``).
"""

from __future__ import annotations

import threading
import time
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fakes.github.core import FakeRepo, GitHubError, GitHubState
from fakes.json_http import JsonReply, JsonRequest


@dataclass
class Workflow:
    """One workflow file of a repository and how its runs behave."""

    id: int
    path: str
    name: str
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    """``on.workflow_dispatch.inputs``: name → ``{"required": bool, "default": …}``."""
    dispatchable: bool = True
    conclusion: str = "success"
    queued_seconds: float = 0.2
    run_seconds: float | None = 0.4


@dataclass
class Run:
    workflow: Workflow
    id: int
    number: int
    ref: str
    sha: str
    inputs: dict[str, Any]
    created_at: datetime
    started: float
    cancelled_at: float | None = None


class Workflows:
    """The workflows and runs of every repository of one fake GitHub."""

    def __init__(self) -> None:
        self.by_repo: dict[str, list[Workflow]] = {}
        self.runs: dict[int, tuple[str, Run]] = {}
        self.dispatches: list[dict[str, Any]] = []
        self._next_id = 9_000_001
        self._lock = threading.Lock()

    def add(self, repo: str, path: str, *, inputs: dict[str, dict[str, Any]] | None = None, **behaviour: Any) -> Workflow:
        with self._lock:
            workflow = Workflow(self._new_id(), path, path.rsplit("/", 1)[-1].split(".", maxsplit=1)[0], dict(inputs or {}), **behaviour)
            self.by_repo.setdefault(repo, []).append(workflow)
            return workflow

    def find(self, repo: str, key: str) -> Workflow:
        for workflow in self.by_repo.get(repo, []):
            if key == str(workflow.id) or key == workflow.path.rsplit("/", 1)[-1]:
                return workflow
        raise GitHubError(404, "Not Found")

    def start(self, repo: str, workflow: Workflow, ref: str, sha: str, inputs: dict[str, Any]) -> Run:
        with self._lock:
            number = 1 + sum(1 for slug, run in self.runs.values() if slug == repo and run.workflow is workflow)
            run = Run(workflow, self._new_id(), number, ref, sha, inputs, datetime.now(UTC), time.monotonic())
            self.runs[run.id] = (repo, run)
            return run

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id


_BOOKS: weakref.WeakKeyDictionary[GitHubState, Workflows] = weakref.WeakKeyDictionary()


def workflows(state: GitHubState) -> Workflows:
    """The workflows of a fake GitHub (``workflows(fake.state).add("shop/app", ".github/workflows/release.yml")``)."""
    return _BOOKS.setdefault(state, Workflows())


def register(state: GitHubState) -> None:
    workflows(state)
    state.add_route("GET", r"/actions/workflows/(?P<workflow>[^/]+)", get_workflow)
    state.add_route("POST", r"/actions/workflows/(?P<workflow>[^/]+)/dispatches", dispatch)
    state.add_route("GET", r"/actions/workflows/(?P<workflow>[^/]+)/runs", list_runs)
    state.add_route("GET", r"/actions/runs/(?P<run>\d+)", get_run)
    state.add_route("POST", r"/actions/runs/(?P<run>\d+)/cancel", cancel_run)


def get_workflow(state: GitHubState, repo: FakeRepo, _request: JsonRequest, params: dict[str, str]) -> JsonReply:
    workflow = workflows(state).find(repo.slug, params["workflow"])
    return JsonReply(200, _workflow_json(state, repo, workflow))


def dispatch(state: GitHubState, repo: FakeRepo, request: JsonRequest, params: dict[str, str]) -> JsonReply:
    book = workflows(state)
    workflow = book.find(repo.slug, params["workflow"])
    body = request.body if isinstance(request.body, dict) else {}
    ref = str(body.get("ref") or "")
    if not ref:
        raise GitHubError(422, 'Invalid request.\n\n"ref" wasn\'t supplied.')
    sha = repo.branch_sha(ref.removeprefix("refs/heads/")) or _tag_sha(repo, ref.removeprefix("refs/tags/"))
    if sha is None:
        raise GitHubError(422, f"No ref found for: {ref}")
    if not workflow.dispatchable:
        raise GitHubError(422, "Workflow does not have 'workflow_dispatch' trigger")
    inputs = body.get("inputs") or {}
    if not isinstance(inputs, dict):
        raise GitHubError(422, "Invalid request.\n\nFor 'properties/inputs', is not an object.")
    unexpected = sorted(set(inputs) - set(workflow.inputs))
    if unexpected:
        raise GitHubError(422, "Unexpected inputs provided: [" + ", ".join(f'"{name}"' for name in unexpected) + "]")
    for name, declared in workflow.inputs.items():
        if declared.get("required") and name not in inputs and "default" not in declared:
            raise GitHubError(422, f"Required input '{name}' not provided")
    book.dispatches.append({"repo": repo.slug, "workflow": workflow.path, "ref": ref, "inputs": dict(inputs)})
    book.start(repo.slug, workflow, ref.removeprefix("refs/heads/").removeprefix("refs/tags/"), sha, dict(inputs))
    return JsonReply(204, None)


def list_runs(state: GitHubState, repo: FakeRepo, request: JsonRequest, params: dict[str, str]) -> JsonReply:
    book = workflows(state)
    workflow = book.find(repo.slug, params["workflow"])
    runs = [run for slug, run in book.runs.values() if slug == repo.slug and run.workflow is workflow]
    shown = [_run_json(state, repo, run) for run in sorted(runs, key=lambda run: run.id, reverse=True)]
    for name in ("event", "branch", "status"):
        wanted = _query(request, name)
        key = "head_branch" if name == "branch" else name
        if wanted is not None:
            shown = [run for run in shown if run[key] == wanted or (name == "status" and run["conclusion"] == wanted)]
    created = _query(request, "created")
    if created is not None and created.startswith(">="):
        since = datetime.fromisoformat(created[2:].replace("Z", "+00:00"))
        shown = [run for run in shown if datetime.fromisoformat(run["created_at"].replace("Z", "+00:00")) >= since]
    return JsonReply(200, {"total_count": len(shown), "workflow_runs": shown})


def get_run(state: GitHubState, repo: FakeRepo, _request: JsonRequest, params: dict[str, str]) -> JsonReply:
    return JsonReply(200, _run_json(state, repo, _run(state, repo, params)))


def cancel_run(state: GitHubState, repo: FakeRepo, _request: JsonRequest, params: dict[str, str]) -> JsonReply:
    run = _run(state, repo, params)
    if _progress(run)[0] == "completed":
        raise GitHubError(409, "Cannot cancel a workflow run that is completed.")
    run.cancelled_at = time.monotonic()
    return JsonReply(202, {})


def _run(state: GitHubState, repo: FakeRepo, params: dict[str, str]) -> Run:
    found = workflows(state).runs.get(int(params["run"]))
    if found is None or found[0] != repo.slug:
        raise GitHubError(404, "Not Found")
    return found[1]


def _progress(run: Run) -> tuple[str, str | None]:
    """(status, conclusion) now: queued, then in_progress, then completed (cancelled if a cancel came first)."""
    if run.cancelled_at is not None:
        return "completed", "cancelled"
    age = time.monotonic() - run.started
    workflow = run.workflow
    if age < workflow.queued_seconds:
        return "queued", None
    if workflow.run_seconds is None or age < workflow.queued_seconds + workflow.run_seconds:
        return "in_progress", None
    return "completed", workflow.conclusion


def _run_json(state: GitHubState, repo: FakeRepo, run: Run) -> dict[str, Any]:
    status, conclusion = _progress(run)
    created = run.created_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    updated = (run.created_at + timedelta(seconds=time.monotonic() - run.started)).strftime("%Y-%m-%dT%H:%M:%SZ")
    api = f"{state.base_url()}/repos/{repo.slug}/actions/runs/{run.id}"
    return {
        "id": run.id, "name": run.workflow.name, "display_title": run.workflow.name, "run_number": run.number, "run_attempt": 1,
        "event": "workflow_dispatch", "status": status, "conclusion": conclusion, "workflow_id": run.workflow.id,
        "path": run.workflow.path, "head_branch": run.ref, "head_sha": run.sha, "url": api,
        "html_url": f"{state.base_url()}/{repo.slug}/actions/runs/{run.id}", "created_at": created, "updated_at": updated,
        "run_started_at": created, "actor": {"login": "opsbot[bot]"}, "repository": {"full_name": repo.slug},
    }  # fmt: skip


def _workflow_json(state: GitHubState, repo: FakeRepo, workflow: Workflow) -> dict[str, Any]:
    return {
        "id": workflow.id, "name": workflow.name, "path": workflow.path, "state": "active",
        "url": f"{state.base_url()}/repos/{repo.slug}/actions/workflows/{workflow.id}",
        "html_url": f"{state.base_url()}/{repo.slug}/blob/main/{workflow.path}",
    }  # fmt: skip


def _tag_sha(repo: FakeRepo, tag: str) -> str | None:
    done = repo.git("rev-parse", "--verify", "--quiet", f"refs/tags/{tag}^{{commit}}", check=False)
    return done.stdout.strip() or None if done.returncode == 0 else None


def _query(request: JsonRequest, name: str) -> str | None:
    values = request.query.get(name)
    return values[0] if values else None
