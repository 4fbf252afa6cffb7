"""GitHub's REST API for ``mode: pull_request``: open a pull request, read it, merge it.

The branch itself is pushed over git (the same compare-and-swap push as commit mode), so the
REST calls are only ``POST /repos/{o}/{r}/pulls``, ``GET …/pulls/{n}`` and ``PUT …/pulls/{n}/merge``
(with ``sha``: GitHub answers 409 if the head moved, so opsbot never merges what was not approved).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from bot.errors import ActionFailed, TemporaryActionError

REQUEST_TIMEOUT_SECONDS = 15.0
MAX_ERROR_BODY = 300


class GitHubClient:
    """The pull-request calls against one repository (``owner/name``)."""

    def __init__(self, api_url: str, slug: str, token: str | None) -> None:
        self._base = api_url.rstrip("/")
        self.slug = slug
        self._token = token

    def create_pull(self, *, title: str, body: str, head: str, base: str) -> dict[str, Any]:
        return self._request("POST", f"/repos/{self.slug}/pulls", {"title": title, "body": body, "head": head, "base": base})

    def pull(self, number: int) -> dict[str, Any]:
        return self._request("GET", f"/repos/{self.slug}/pulls/{number}")

    def merge(self, number: int, *, sha: str, method: str, title: str, message: str) -> dict[str, Any]:
        body = {"sha": sha, "merge_method": method, "commit_title": title, "commit_message": message}
        return self._request("PUT", f"/repos/{self.slug}/pulls/{number}/merge", body)

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        if self._token is None:
            raise ActionFailed("pull_request mode needs a GitHub token; set OPSBOT_GITHUB_TOKEN_FILE (docs/gitops.md)")
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self._base + path, data=data, method=method)  # noqa: S310 - the configured API URL
        request.add_header("Authorization", f"Bearer {self._token}")
        request.add_header("Accept", "application/vnd.github+json")
        request.add_header("X-GitHub-Api-Version", "2022-11-28")
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
        text = (message + (f" ({details})" if details else ""))[:MAX_ERROR_BODY].replace(self._token or "\0", "***")
        what = f"GitHub {method} {path}"
        if code in (401, 403):
            return ActionFailed(f"{what} refused opsbot's token ({code}: {text}); check OPSBOT_GITHUB_TOKEN_FILE and its scopes")
        if code >= 500 or code == 429:
            return TemporaryActionError(f"{what} answered {code}: {text}")
        return ActionFailed(f"{what} answered {code}: {text}")
