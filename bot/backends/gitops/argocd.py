"""Argo CD's REST API: read an Application, ask it to sync a revision, and decide when that sync is done.

Only two calls (``GET /api/v1/applications/{app}``, ``POST …/sync``) with a bearer token, over
the standard library's HTTP client: opsbot needs nothing Argo CD's CLI would add. The decision
function ``sync_progress`` is pure, tested on plain dicts like ``rollout_status``.
"""

from __future__ import annotations

import json
import ssl
import urllib.parse
from dataclasses import dataclass
from typing import Any

from bot.catalog.config import ArgoCdSync
from bot.errors import ActionFailed, TemporaryActionError

REQUEST_TIMEOUT_SECONDS = 15.0
MAX_ERROR_BODY = 300
"""Characters of an error body quoted back: enough to read Argo CD's message, never a whole page."""


@dataclass(frozen=True)
class SyncProgress:
    """Where an app stands relative to the commit opsbot waits for."""

    done: bool
    failed: bool
    message: str


def sync_progress(app: dict[str, Any], commit: str) -> SyncProgress:
    """Synced to ``commit`` and Healthy is done; a failed sync operation of it, or Degraded at it, is failure.

    Argo CD reports ``status.sync.revision`` (what is applied), ``status.sync.status``
    (Synced/OutOfSync), ``status.health.status`` and ``status.operationState`` (the last sync
    operation: ``phase`` Running/Succeeded/Failed/Error, ``syncResult.revision``, ``message``).
    """
    status = app.get("status") or {}
    sync = status.get("sync") or {}
    health = (status.get("health") or {}).get("status") or "Unknown"
    revision = str(sync.get("revision") or "")
    operation = status.get("operationState") or {}
    phase = operation.get("phase") or ""
    requested = ((operation.get("operation") or {}).get("sync") or {}).get("revision")
    operation_revision = str((operation.get("syncResult") or {}).get("revision") or requested or "")
    at_commit = revision == commit
    summary = f"sync {sync.get('status') or 'Unknown'} at {revision[:7] or '?'}, health {health}"
    if phase in ("Failed", "Error") and operation_revision in ("", commit):
        return SyncProgress(False, True, f"sync of {commit[:7]} {phase.lower()}: {operation.get('message') or 'no message'}")
    if at_commit and health == "Degraded":
        return SyncProgress(False, True, f"{summary}: {_degraded_reason(app)}")
    if at_commit and sync.get("status") == "Synced" and health == "Healthy" and phase not in ("Running", "Terminating"):
        return SyncProgress(True, False, summary)
    if phase == "Running":
        summary += f"; operation running ({operation.get('message') or 'syncing'})"
    return SyncProgress(False, False, summary)


def _degraded_reason(app: dict[str, Any]) -> str:
    status = app.get("status") or {}
    message = (status.get("health") or {}).get("message")
    if message:
        return str(message)
    for resource in status.get("resources") or []:
        health = resource.get("health") or {}
        if health.get("status") == "Degraded":
            return f"{resource.get('kind')} {resource.get('name')}: {health.get('message') or 'Degraded'}"
    return "Degraded"


class ArgoCdClient:
    """The calls opsbot makes against one Argo CD server."""

    def __init__(self, sync: ArgoCdSync, token: str | None) -> None:
        self._sync = sync
        self._token = token
        self._context = ssl._create_unverified_context() if sync.insecure else None  # noqa: S323 - opt-in for lab servers

    @property
    def where(self) -> str:
        return f"Argo CD app {self._sync.app} at {self._sync.server}"

    def application(self) -> dict[str, Any]:
        return self._request("GET", self._app_path())

    def sync(self, revision: str) -> dict[str, Any]:
        """Start a sync of exactly ``revision`` (Argo CD answers 400 if an operation is already running)."""
        return self._request("POST", self._app_path() + "/sync", {"revision": revision, "prune": False, "dryRun": False})

    def _app_path(self) -> str:
        path = "/api/v1/applications/" + urllib.parse.quote(self._sync.app, safe="")
        if self._sync.project:
            path += "?project=" + urllib.parse.quote(self._sync.project)
        return path

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        import urllib.error  # the stdlib HTTP client loads with a first request, not with the gitops actions (`opsbot validate`)
        import urllib.request

        if self._token is None:
            raise ActionFailed(f"no Argo CD token is configured for {self.where}; set OPSBOT_ARGOCD_TOKEN_FILE (docs/gitops.md)")
        base, _, query = path.partition("?")
        url = self._sync.server.rstrip("/") + base + (("?" + query) if query else "")
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - the URL is the configured server
        request.add_header("Authorization", f"Bearer {self._token}")
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_SECONDS, context=self._context) as response:  # noqa: S310
                answer = json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            raise self._error(error.code, error.read()) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            reason = getattr(error, "reason", error)
            raise TemporaryActionError(f"cannot reach {self.where}: {reason}") from None
        return answer if isinstance(answer, dict) else {}

    def _error(self, code: int, raw: bytes) -> ActionFailed:
        try:
            message = str(json.loads(raw).get("message") or "")
        except (ValueError, AttributeError):
            message = raw.decode("utf-8", errors="replace")
        message = message[:MAX_ERROR_BODY].replace(self._token or "\0", "***")
        if code in (401, 403):
            return ActionFailed(
                f"{self.where} refused opsbot's token ({code}: {message or 'unauthorized'}); check OPSBOT_ARGOCD_TOKEN_FILE "
                "and the account's RBAC (it needs get and sync on the app)"
            )
        if code == 404:
            return ActionFailed(f"{self.where} does not exist ({message or 'not found'})")
        if code >= 500 or code == 429:
            return TemporaryActionError(f"{self.where} answered {code}: {message}")
        return ActionFailed(f"{self.where} answered {code}: {message}")
