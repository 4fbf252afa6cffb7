"""The fake Argo CD API server: ``GET /api/v1/applications/{name}`` and ``POST …/sync`` with bearer tokens.

Errors are shaped like Argo CD's gRPC-gateway answers (``{"error", "code", "message"}``, where
``code`` is the gRPC code): 401 ``invalid session`` for a missing or unknown token, 403
``permission denied`` for a token without rights on the app, 404 for an unknown app, and 400
``another operation is already in progress`` for a sync while one runs.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from fakes.argocd.applications import FakeApplication
from fakes.json_http import JsonHttpServer, JsonReply, JsonRequest

PREFIX = "/api/v1/applications/"


class FakeArgoCd:
    """Applications, tokens (token → apps it may use, ``*`` for all) and the HTTP server."""

    def __init__(self, *, token: str = "argocd-token") -> None:
        self.apps: dict[str, FakeApplication] = {}
        self.tokens: dict[str, set[str]] = {token: {"*"}}
        self._lock = threading.Lock()
        self.http = JsonHttpServer(self.handle, name="argocd")

    def add_app(self, app: FakeApplication) -> FakeApplication:
        self.apps[app.name] = app
        return app

    @property
    def url(self) -> str:
        return self.http.url

    def __enter__(self) -> FakeArgoCd:
        self.http.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.stop()

    def handle(self, request: JsonRequest) -> JsonReply:
        if not request.path.startswith(PREFIX):
            return _error(404, 5, "Not Found")
        name, _, action = request.path[len(PREFIX) :].partition("/")
        token = (request.header("authorization") or "").removeprefix("Bearer ").strip()
        if token not in self.tokens:
            return _error(401, 16, "invalid session: token signature is invalid")
        allowed = self.tokens[token]
        with self._lock:
            app = self.apps.get(name)
            if "*" not in allowed and name not in allowed:
                return _error(403, 7, "permission denied")
            if app is None:
                return _error(404, 5, f'applications.argoproj.io "{name}" not found')
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            if request.method == "GET" and action == "":
                app.advance(now)
                return JsonReply(200, app.to_json())
            if request.method == "POST" and action == "sync":
                return self._sync(app, request.body, now)
        return _error(405, 12, "method not allowed")

    def _sync(self, app: FakeApplication, body: Any, now: str) -> JsonReply:
        if app.operation is not None and app.operation.get("phase") == "Running":
            return _error(400, 9, "another operation is already in progress")
        revision = body.get("revision") if isinstance(body, dict) else None
        app.sync_requests.append(body if isinstance(body, dict) else {})
        app.start_sync(revision, now)
        return JsonReply(200, app.to_json())


def _error(status: int, code: int, message: str) -> JsonReply:
    return JsonReply(status, {"error": message, "code": code, "message": message})
