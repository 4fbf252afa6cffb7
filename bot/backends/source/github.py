"""GitHub's REST API, read-only, for a service's source repository.

The calls, all real GitHub endpoints:

- ``GET /repos/{o}/{r}/compare/{base}...{head}``: the commits between two tags (oldest first,
  at most 250 listed, ``total_commits`` counting all), ``status`` and ``html_url``;
- ``GET /repos/{o}/{r}/commits/{sha}/pulls``: the pull requests a commit belongs to. GitHub has
  no "pull requests merged between two refs" endpoint; asking per commit finds merge, squash and
  rebase merges alike, where the search API would need dates and guesswork;
- ``GET /repos/{o}/{r}/commits/{ref}/status`` (the combined commit status) and
  ``GET /repos/{o}/{r}/commits/{ref}/check-runs`` (GitHub Actions and other apps report here, not
  as statuses).

A token (``OPSBOT_GITHUB_TOKEN_FILE``) is sent when configured; public repositories answer without.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from bot.errors import ActionFailed, TemporaryActionError

REQUEST_TIMEOUT_SECONDS = 10.0
MAX_ERROR_BODY = 200
FAILED_CONCLUSIONS = frozenset({"failure", "timed_out", "cancelled", "action_required", "startup_failure", "stale"})


class SourceUnreachable(TemporaryActionError):
    """GitHub did not answer (or answered 5xx/429): nothing is known."""


class RefNotFound(ActionFailed):
    """GitHub answered 404: the tag (or the repository) does not exist, or the token cannot see it."""


@dataclass(frozen=True)
class Commit:
    sha: str
    title: str
    author: str


@dataclass(frozen=True)
class Comparison:
    """``base...head``: ``status`` is ahead, behind, diverged or identical; ``commits`` oldest first."""

    status: str
    ahead_by: int
    behind_by: int
    total_commits: int
    commits: tuple[Commit, ...]
    html_url: str


@dataclass(frozen=True)
class PullRequest:
    number: int
    title: str
    author: str
    merged: bool


@dataclass(frozen=True)
class Checks:
    """The checks of one commit: ``state`` success, failure, pending or none; ``failing`` names what is not green."""

    state: str
    sha: str
    failing: tuple[str, ...] = ()
    reported: int = 0


class SourceClient:
    """Read calls against one repository (``owner/name``) of a GitHub API (github.com or an Enterprise Server)."""

    def __init__(self, api_url: str, slug: str, token: str | None, *, timeout: float = REQUEST_TIMEOUT_SECONDS) -> None:
        self._base = api_url.rstrip("/")
        self.slug = slug
        self._token = token
        self._timeout = timeout

    def compare(self, base: str, head: str) -> Comparison:
        body = self._get(f"/compare/{_ref(base)}...{_ref(head)}")
        commits = tuple(_commit(item) for item in body.get("commits") or [] if isinstance(item, dict))
        return Comparison(
            status=str(body.get("status") or "unknown"),
            ahead_by=int(body.get("ahead_by") or 0),
            behind_by=int(body.get("behind_by") or 0),
            total_commits=int(body.get("total_commits") or len(commits)),
            commits=commits,
            html_url=str(body.get("html_url") or ""),
        )

    def pulls_of(self, sha: str) -> list[PullRequest]:
        answer = self._get(f"/commits/{_ref(sha)}/pulls", listing=True)
        return [
            PullRequest(
                number=int(item.get("number") or 0),
                title=str(item.get("title") or ""),
                author=str((item.get("user") or {}).get("login") or ""),
                merged=bool(item.get("merged_at") or item.get("merged")),
            )
            for item in answer.get("items") or []
            if isinstance(item, dict)
        ]

    def checks(self, ref: str) -> Checks:
        """The combined status and the check runs of ``ref``, folded into one state."""
        combined = self._get(f"/commits/{_ref(ref)}/status")
        runs = self._get(f"/commits/{_ref(ref)}/check-runs?per_page=100")
        sha = str(combined.get("sha") or "")
        failing: list[str] = []
        pending = False
        statuses = [item for item in combined.get("statuses") or [] if isinstance(item, dict)]
        for status in statuses:
            state = str(status.get("state"))
            if state in ("failure", "error"):
                failing.append(f"{status.get('context')}: {state}")
            elif state == "pending":
                pending = True
        check_runs = [item for item in runs.get("check_runs") or [] if isinstance(item, dict)]
        for run in check_runs:
            if run.get("status") != "completed":
                pending = True
            elif str(run.get("conclusion")) in FAILED_CONCLUSIONS:
                failing.append(f"{run.get('name')}: {run.get('conclusion')}")
        reported = len(statuses) + len(check_runs)
        state = "failure" if failing else "pending" if pending else "success" if reported else "none"
        return Checks(state=state, sha=sha, failing=tuple(failing), reported=reported)

    def _get(self, path: str, *, listing: bool = False) -> dict[str, Any]:
        url = f"{self._base}/repos/{self.slug}{path}"
        request = urllib.request.Request(url, method="GET")  # noqa: S310 - the configured API URL
        request.add_header("Accept", "application/vnd.github+json")
        request.add_header("X-GitHub-Api-Version", "2022-11-28")
        request.add_header("User-Agent", "opsbot")
        if self._token:
            request.add_header("Authorization", f"Bearer {self._token}")
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310
                answer = json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            raise self._error(path, error.code, error.read()) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as error:
            raise SourceUnreachable(f"could not reach GitHub for {self.slug}: {getattr(error, 'reason', None) or error}") from None
        if listing:
            return {"items": answer if isinstance(answer, list) else []}
        return answer if isinstance(answer, dict) else {}

    def _error(self, path: str, code: int, raw: bytes) -> ActionFailed:
        try:
            message = str(json.loads(raw).get("message") or "")
        except (ValueError, AttributeError):
            message = raw.decode("utf-8", errors="replace")
        text = message[:MAX_ERROR_BODY].replace(self._token or "\0", "***")
        if code == 404:
            return RefNotFound(f"GitHub has no {path.split('?', maxsplit=1)[0]} in {self.slug} (404: {text})")
        if code >= 500 or code == 429 or (code == 403 and "rate limit" in text.lower()):
            return SourceUnreachable(f"could not reach GitHub for {self.slug}: it answered {code} ({text})")
        if code in (401, 403):
            return ActionFailed(f"GitHub refused opsbot's token for {self.slug} ({code}: {text}); check OPSBOT_GITHUB_TOKEN_FILE")
        return ActionFailed(f"GitHub answered {code} for {self.slug}{path}: {text}")


def _commit(item: dict[str, Any]) -> Commit:
    commit = item.get("commit") or {}
    message = str(commit.get("message") or "")
    login = (item.get("author") or {}).get("login")
    name = (commit.get("author") or {}).get("name")
    return Commit(sha=str(item.get("sha") or ""), title=message.split("\n", 1)[0], author=str(login or name or "unknown"))


def _ref(ref: str) -> str:
    """A tag or sha as one path segment (a tag may hold ``/``, which GitHub takes encoded)."""
    return urllib.parse.quote(ref, safe="")
