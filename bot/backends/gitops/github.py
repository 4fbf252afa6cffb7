"""GitHub's REST API: pull requests for ``mode: pull_request``, and workflow runs for ``github.workflow_dispatch``.

The branch itself is pushed over git (the same compare-and-swap push as commit mode), so the
pull-request calls are only ``POST /repos/{o}/{r}/pulls``, ``GET …/pulls/{n}`` and ``PUT …/pulls/{n}/merge``
(with ``sha``: GitHub answers 409 if the head moved, so opsbot never merges what was not approved).
The Actions calls read a workflow, dispatch it, list and read its runs, and cancel one.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from bot.backends.gitops.github_auth import API_VERSION, GitHubCredentials
from bot.errors import ActionFailed, TemporaryActionError

REQUEST_TIMEOUT_SECONDS = 15.0
MAX_ERROR_BODY = 300


class GitHubClient:
    """The calls opsbot makes against one repository (``owner/name``), as a token or a GitHub App installation."""

    def __init__(self, api_url: str, slug: str, credentials: GitHubCredentials | str | None) -> None:
        self._base = api_url.rstrip("/")
        self.slug = slug
        self._credentials = credentials if isinstance(credentials, GitHubCredentials) else GitHubCredentials(token=credentials)

    def create_pull(self, *, title: str, body: str, head: str, base: str) -> dict[str, Any]:
        return self._request("POST", f"/repos/{self.slug}/pulls", {"title": title, "body": body, "head": head, "base": base})

    def pull(self, number: int) -> dict[str, Any]:
        return self._request("GET", f"/repos/{self.slug}/pulls/{number}")

    def merge(self, number: int, *, sha: str, method: str, title: str, message: str) -> dict[str, Any]:
        body = {"sha": sha, "merge_method": method, "commit_title": title, "commit_message": message}
        return self._request("PUT", f"/repos/{self.slug}/pulls/{number}/merge", body)

    def workflow(self, workflow: str) -> dict[str, Any]:
        """``GET /actions/workflows/{id}``: ``workflow`` is the numeric id or the file name (``release.yml``)."""
        return self._request("GET", f"/repos/{self.slug}/actions/workflows/{_segment(workflow)}")

    def dispatch_workflow(self, workflow: str, *, ref: str, inputs: dict[str, str]) -> None:
        """``POST …/dispatches``: GitHub answers 204 and no run id; ``workflow_runs`` finds the run."""
        self._request("POST", f"/repos/{self.slug}/actions/workflows/{_segment(workflow)}/dispatches", {"ref": ref, "inputs": inputs})

    def workflow_runs(self, workflow: str, *, branch: str, created_since: str) -> list[dict[str, Any]]:
        """This workflow's ``workflow_dispatch`` runs on ``branch`` created at or after ``created_since``, newest first."""
        query = urllib.parse.urlencode({"event": "workflow_dispatch", "branch": branch, "created": f">={created_since}", "per_page": 30})
        answer = self._request("GET", f"/repos/{self.slug}/actions/workflows/{_segment(workflow)}/runs?{query}")
        runs = answer.get("workflow_runs") or []
        return [run for run in runs if isinstance(run, dict)]

    def workflow_run(self, run_id: int) -> dict[str, Any]:
        return self._request("GET", f"/repos/{self.slug}/actions/runs/{run_id}")

    def cancel_workflow_run(self, run_id: int) -> None:
        self._request("POST", f"/repos/{self.slug}/actions/runs/{run_id}/cancel")

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        import urllib.error  # the stdlib HTTP client loads with a first request, not with the gitops actions (`opsbot validate`)
        import urllib.request

        token = self._credentials.token_for(self._base)
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self._base + path, data=data, method=method)  # noqa: S310 - the configured API URL
        request.add_header("Authorization", f"Bearer {token}")
        request.add_header("Accept", "application/vnd.github+json")
        request.add_header("X-GitHub-Api-Version", API_VERSION)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_SECONDS) as response:  # noqa: S310
                answer = json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            raise self._error(method, path, error.code, error.read()) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            raise TemporaryActionError(f"cannot reach the GitHub API for {self.slug}: {getattr(error, 'reason', error)}") from None
        return answer if isinstance(answer, dict) else {}

    def _error(self, method: str, path: str, code: int, raw: bytes) -> ActionFailed:
        try:
            parsed = json.loads(raw)
            message = str(parsed.get("message") or "")
            details = "; ".join(str(e.get("message") or e.get("code")) for e in parsed.get("errors") or [] if isinstance(e, dict))
        except (ValueError, AttributeError):
            message, details = raw.decode("utf-8", errors="replace"), ""
        text = (message + (f" ({details})" if details else ""))[:MAX_ERROR_BODY]
        for secret in self._credentials.secrets():
            text = text.replace(secret, "***")
        what = f"GitHub {method} {path.split('?', 1)[0]}"
        if code in (401, 403):
            return ActionFailed(
                f"{what} refused opsbot's token ({code}: {text}); "
                "check OPSBOT_GITHUB_TOKEN_FILE (or the GitHub App settings) and its permissions"
            )
        if code >= 500 or code == 429:
            return TemporaryActionError(f"{what} answered {code}: {text}")
        return ActionFailed(f"{what} answered {code}: {text}")


def _segment(value: str) -> str:
    return urllib.parse.quote(value, safe="")
