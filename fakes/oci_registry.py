"""A fake OCI Distribution registry: the read side opsbot uses, with the registry's own auth flows.

What it serves, per the OCI distribution spec and the Docker registry token spec:

- ``GET /v2/``: 200 when the caller is authorized, else 401 with a challenge;
- ``GET /v2/<name>/tags/list``: ``{"name", "tags"}`` in lexical order, paginated by ``n`` and
  ``last`` with a ``Link: <…?n=…&last=…>; rel="next"`` header while more remain;
- ``HEAD``/``GET /v2/<name>/manifests/<tag or digest>``: 200 with ``Docker-Content-Digest``,
  ``Content-Type`` and ``Content-Length``; 404 ``MANIFEST_UNKNOWN`` / ``NAME_UNKNOWN``;
- auth ``none``, ``basic`` (401 ``WWW-Authenticate: Basic realm=…``), or ``token``: 401
  ``WWW-Authenticate: Bearer realm="<url>/token",service="fake-registry",scope="repository:<name>:pull"``,
  ``GET /token?service=…&scope=…`` (Basic credentials when users are configured) answering
  ``{"token", "access_token", "expires_in", "issued_at"}``, then the request again with
  ``Authorization: Bearer <token>``. A token only covers the repositories its scopes named.

Errors carry the spec's body: ``{"errors": [{"code", "message", "detail"}]}``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

from fakes.json_http import JsonHttpServer, JsonReply, JsonRequest

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
SERVICE = "fake-registry"
TOKEN_SECONDS = 300

_TAGS = re.compile(r"^/v2/(?P<name>[a-z0-9]+(?:[._/-][a-z0-9]+)*)/tags/list$")
_MANIFEST = re.compile(r"^/v2/(?P<name>[a-z0-9]+(?:[._/-][a-z0-9]+)*)/manifests/(?P<reference>[^/]+)$")

AuthMode = Literal["none", "basic", "token"]


@dataclass
class Grant:
    """An issued bearer token: the repositories it may pull."""

    repositories: frozenset[str]


@dataclass
class RegistryState:
    """Repositories (tag → manifest), users, tokens, and a switch to answer every call with an error."""

    auth: AuthMode = "none"
    users: dict[str, str] = field(default_factory=dict)
    repositories: dict[str, dict[str, bytes]] = field(default_factory=dict)
    tokens: dict[str, Grant] = field(default_factory=dict)
    failing: int | None = None
    token_requests: int = 0


class FakeOciRegistry:
    """``with FakeOciRegistry(auth="token", users={"ci": "secret"}) as registry: registry.push("shop/checkout", "1.4.2")``."""

    def __init__(self, *, auth: AuthMode = "none", users: dict[str, str] | None = None) -> None:
        self.state = RegistryState(auth=auth, users=dict(users or {}))
        self.http = JsonHttpServer(self._handle, name="oci-registry")
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return self.http.url

    @property
    def requests(self) -> list[JsonRequest]:
        return self.http.requests

    def push(self, repository: str, *tags: str) -> str:
        """Store an image under ``tags``; returns its manifest digest."""
        # Serialized as the server will send it (json.dumps' defaults), so the digest matches the bytes served.
        annotations = {"org.opencontainers.image.ref.name": ",".join(tags), "repository": repository}
        manifest = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST_TYPE, "annotations": annotations}).encode()
        with self._lock:
            stored = self.state.repositories.setdefault(repository, {})
            for tag in tags:
                stored[tag] = manifest
        return digest_of(manifest)

    def delete_tag(self, repository: str, tag: str) -> None:
        with self._lock:
            self.state.repositories.get(repository, {}).pop(tag, None)

    def expire_tokens(self) -> None:
        """Every issued token stops working (they expired): clients must fetch new ones."""
        with self._lock:
            self.state.tokens.clear()

    def fail_with(self, status: int | None) -> None:
        """Answer every request with ``status`` (a 503 outage), or behave again with None."""
        self.state.failing = status

    def __enter__(self) -> FakeOciRegistry:
        self.http.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.stop()

    def _handle(self, request: JsonRequest) -> JsonReply:
        if self.state.failing is not None:
            return _error(self.state.failing, "UNAVAILABLE", "service unavailable")
        if request.path == "/token":
            return self._token(request)
        with self._lock:
            name = _repository_of(request.path)
            refusal = self._authorize(request, name)
            if refusal is not None:
                return refusal
            if request.path == "/v2/":
                return JsonReply(200, {}, {"Docker-Distribution-API-Version": "registry/2.0"})
            if request.method != "GET" and request.method != "HEAD":
                return _error(405, "UNSUPPORTED", "the operation is unsupported")
            tags = _TAGS.match(request.path)
            if tags is not None:
                return self._tags(tags["name"], request)
            manifest = _MANIFEST.match(request.path)
            if manifest is not None:
                return self._manifest(manifest["name"], manifest["reference"])
            return _error(404, "NAME_UNKNOWN", "repository name not known to registry")

    def _authorize(self, request: JsonRequest, name: str | None) -> JsonReply | None:
        state = self.state
        header = request.header("authorization") or ""
        scheme, _, value = header.partition(" ")
        if state.auth == "none":
            return None
        if state.auth == "basic":
            if scheme.lower() == "basic" and _basic_user(value, state.users) is not None:
                return None
            return _error(401, "UNAUTHORIZED", "authentication required", {"WWW-Authenticate": f'Basic realm="{SERVICE}"'})
        grant = state.tokens.get(value.strip()) if scheme.lower() == "bearer" else None
        if grant is not None and (name is None or name in grant.repositories):
            return None
        challenge = f'Bearer realm="{self.url}/token",service="{SERVICE}"'
        if name is not None:
            challenge += f',scope="repository:{name}:pull"'
        if grant is not None:
            challenge += ',error="insufficient_scope"'
        return _error(401, "UNAUTHORIZED", "authentication required", {"WWW-Authenticate": challenge})

    def _token(self, request: JsonRequest) -> JsonReply:
        state = self.state
        with self._lock:
            state.token_requests += 1
            if request.query.get("service", [""])[0] != SERVICE:
                return _error(400, "DENIED", "unknown service")
            header = request.header("authorization") or ""
            scheme, _, value = header.partition(" ")
            user = _basic_user(value, state.users) if scheme.lower() == "basic" else None
            if state.users and user is None:
                return _error(401, "UNAUTHORIZED", "invalid username or password")
            granted = frozenset(
                scope.split(":")[1]
                for scope in request.query.get("scope", [])
                if scope.startswith("repository:") and "pull" in scope.rsplit(":", 1)[-1].split(",")
            )
            token = secrets.token_urlsafe(24)
            state.tokens[token] = Grant(granted)
        return JsonReply(200, {"token": token, "access_token": token, "expires_in": TOKEN_SECONDS, "issued_at": "2026-01-01T00:00:00Z"})

    def _tags(self, name: str, request: JsonRequest) -> JsonReply:
        stored = self.state.repositories.get(name)
        if stored is None:
            return _error(404, "NAME_UNKNOWN", "repository name not known to registry", detail={"name": name})
        tags = sorted(stored)
        last = request.query.get("last", [None])[0]
        if last is not None:
            tags = [tag for tag in tags if tag > last]
        size = request.query.get("n", [None])[0]
        headers: dict[str, str] = {}
        if size is not None:
            if not size.isdigit():
                return _error(400, "PAGINATION_NUMBER_INVALID", "invalid number of results requested")
            count = int(size)
            if count < len(tags) and count > 0:
                headers["Link"] = f'</v2/{name}/tags/list?n={count}&last={quote(tags[count - 1])}>; rel="next"'
            tags = tags[:count]
        return JsonReply(200, {"name": name, "tags": tags}, headers)

    def _manifest(self, name: str, reference: str) -> JsonReply:
        stored = self.state.repositories.get(name)
        if stored is None:
            return _error(404, "NAME_UNKNOWN", "repository name not known to registry", detail={"name": name})
        manifest = stored.get(reference) or next((item for item in stored.values() if digest_of(item) == reference), None)
        if manifest is None:
            return _error(404, "MANIFEST_UNKNOWN", "manifest unknown", detail={"tag": reference})
        headers = {"Docker-Content-Digest": digest_of(manifest), "Content-Type": MANIFEST_TYPE}
        return JsonReply(200, json.loads(manifest), headers)


def digest_of(manifest: bytes) -> str:
    return "sha256:" + hashlib.sha256(manifest).hexdigest()


def _repository_of(path: str) -> str | None:
    found = _TAGS.match(path) or _MANIFEST.match(path)
    return found["name"] if found is not None else None


def _basic_user(value: str, users: dict[str, str]) -> str | None:
    try:
        user, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return user if users.get(user) == password and secrets.compare_digest(users[user], password) else None


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None, detail: Any = None) -> JsonReply:
    return JsonReply(status, {"errors": [{"code": code, "message": message, "detail": detail}]}, headers or {})
