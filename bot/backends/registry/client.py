"""Reading an OCI registry: tags of a repository (paginated) and whether a manifest exists, with auth.

Auth follows the registry: a request without credentials may pass (a public registry); on 401
the challenge says how to authenticate. ``Basic``: send ``username_file``/``password_file``.
``Bearer``: ask the challenge's ``realm`` for a token covering its ``service`` and ``scope``
(with basic credentials when configured, anonymously otherwise), keep it per scope, and send the
request again; a token the registry no longer takes is fetched again once. ``token_file``: a
bearer token sent as is. Credentials are read from their files at each use (mounted Secrets
rotate) and never appear in a message or log line; a realm on plain http never receives them
when the registry itself is https.
"""

from __future__ import annotations

import base64
import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.backends.images import split_image
from bot.backends.registry.challenge import Challenge, parse_challenge
from bot.catalog.config import ImageRegistry
from bot.errors import ActionFailed, TemporaryActionError

REQUEST_TIMEOUT_SECONDS = 10.0
PAGE_SIZE = 100
MAX_PAGES = 50
"""At most this many pages of tags (5,000 tags): a registry answering Link headers forever cannot hold a plan."""
MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)


class RegistryUnreachable(TemporaryActionError):
    """The registry did not answer, or answered 5xx/429: nothing is known about the image."""


class RegistryRefused(ActionFailed):
    """The registry refused opsbot's credentials (401/403 after authenticating)."""


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: dict[str, str]
    body: bytes


class RegistryClient:
    """One registry (``ImageRegistry``): ``list_tags(repository)``, ``manifest_digest(repository, reference)``."""

    def __init__(self, registry: ImageRegistry, *, timeout: float = REQUEST_TIMEOUT_SECONDS) -> None:
        self.registry = registry
        self._base = registry.url.rstrip("/")
        self._timeout = timeout
        self._tokens: dict[str, str] = {}
        self._lock = threading.Lock()

    def list_tags(self, repository: str) -> list[str]:
        """Every tag of ``repository``, following the ``Link: …; rel="next"`` pages; [] when the repository is unknown."""
        tags: list[str] = []
        path: str | None = f"/v2/{repository}/tags/list?n={PAGE_SIZE}"
        for _page in range(MAX_PAGES):
            if path is None:
                return tags
            answer = self._get(path, repository, "GET")
            if answer.status == 404:
                return tags
            self._raise_unless_ok(answer, f"tags of {repository}")
            tags.extend(str(tag) for tag in _json(answer.body).get("tags") or [])
            path = _next_page(answer.headers.get("link"), self._base)
        return tags

    def manifest_digest(self, repository: str, reference: str) -> str | None:
        """The manifest digest of ``repository:reference`` (a tag or ``sha256:`` digest), or None when the registry says 404."""
        answer = self._get(f"/v2/{repository}/manifests/{urllib.parse.quote(reference, safe=':')}", repository, "HEAD")
        if answer.status == 404:
            return None
        self._raise_unless_ok(answer, f"{repository}:{reference}")
        return answer.headers.get("docker-content-digest") or "(no digest given)"

    def manifest_exists(self, image: str) -> bool:
        """Whether the registry has ``image`` (a full reference; its repository read as ``repository_of`` does)."""
        repository = repository_of(image, self.registry)
        _, tag, digest = split_image(image)
        return self.manifest_digest(repository, digest or tag or "latest") is not None

    def describe(self) -> str:
        return f"the registry at {self._base}"

    def _get(self, path: str, repository: str, method: str) -> _Answer:
        answer = self._send(method, path, self._authorization(repository))
        if answer.status != 401:
            return answer
        challenge = parse_challenge(answer.headers.get("www-authenticate", ""))
        authorization = self._answer_challenge(challenge, repository)
        return self._send(method, path, authorization) if authorization is not None else answer

    def _authorization(self, repository: str) -> str | None:
        """What to send first: a token already held for this repository, the configured bearer token, or nothing."""
        if self.registry.token_file is not None:
            return "Bearer " + _secret(self.registry.token_file, "token_file")
        with self._lock:
            token = self._tokens.get(_pull_scope(repository))
        return f"Bearer {token}" if token else None

    def _answer_challenge(self, challenge: Challenge | None, repository: str) -> str | None:
        if challenge is None or self.registry.token_file is not None:
            return None
        if challenge.scheme == "basic":
            return self._basic()
        if challenge.scheme != "bearer" or not challenge.get("realm"):
            return None
        scope = challenge.get("scope") or _pull_scope(repository)
        token = self._fetch_token(str(challenge.get("realm")), challenge.get("service"), scope)
        with self._lock:
            self._tokens[scope] = token
        return f"Bearer {token}"

    def _fetch_token(self, realm: str, service: str | None, scope: str) -> str:
        if urllib.parse.urlsplit(realm).scheme != "https" and urllib.parse.urlsplit(self._base).scheme == "https":
            raise RegistryRefused(f"{self.describe()} sent its token service at {realm}, not https; opsbot sends no credentials there")
        query = urllib.parse.urlencode([(key, value) for key, value in (("service", service), ("scope", scope)) if value])
        answer = self._send("GET", realm + ("&" if "?" in realm else "?") + query, self._basic(), absolute=True)
        if answer.status in (401, 403):
            raise RegistryRefused(
                f"the token service of {self.describe()} refused opsbot's credentials ({answer.status}); "
                "check username_file and password_file"
            )
        self._raise_unless_ok(answer, "a token")
        body = _json(answer.body)
        token = body.get("token") or body.get("access_token")
        if not isinstance(token, str) or not token:
            raise RegistryRefused(f"the token service of {self.describe()} answered without a token")
        return token

    def _basic(self) -> str | None:
        registry = self.registry
        if registry.username_file is None or registry.password_file is None:
            return None
        pair = f"{_secret(registry.username_file, 'username_file')}:{_secret(registry.password_file, 'password_file')}"
        return "Basic " + base64.b64encode(pair.encode()).decode("ascii")

    def _send(self, method: str, path: str, authorization: str | None, *, absolute: bool = False) -> _Answer:
        url = path if absolute else self._base + path
        request = urllib.request.Request(url, method=method)  # noqa: S310 - the configured registry or its token service
        request.add_header("Accept", MANIFEST_TYPES if "/manifests/" in path else "application/json")
        request.add_header("User-Agent", "opsbot")
        if authorization is not None:
            request.add_header("Authorization", authorization)
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310
                return _Answer(response.status, _lower(response.headers.items()), response.read() if method != "HEAD" else b"")
        except urllib.error.HTTPError as error:
            return _Answer(error.code, _lower(error.headers.items()), error.read() if method != "HEAD" else b"")
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as error:
            reason = getattr(error, "reason", None) or error
            raise RegistryUnreachable(f"could not reach {self.describe()}: {reason}") from None

    def _raise_unless_ok(self, answer: _Answer, what: str) -> None:
        if 200 <= answer.status < 300:
            return
        if answer.status in (401, 403):
            raise RegistryRefused(f"{self.describe()} refused opsbot's credentials for {what} ({answer.status} {_error_code(answer.body)})")
        if answer.status >= 500 or answer.status == 429:
            raise RegistryUnreachable(f"could not reach {self.describe()}: it answered {answer.status} for {what}")
        raise ActionFailed(f"{self.describe()} answered {answer.status} {_error_code(answer.body)} for {what}")


def repository_of(image: str, registry: ImageRegistry) -> str:
    """The repository an image reference names in ``registry``: its ``repository`` if set, else the path after the host.

    ``registry.example.com/shop/checkout:1.4.2`` → ``shop/checkout``; a Docker Hub name without a
    host (``nginx``) → ``library/nginx``. The first part is a host when it has a dot or a port, or
    is ``localhost`` (the rule docker's reference parser applies).
    """
    if registry.repository is not None:
        return registry.repository
    name, _, _ = split_image(image)
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return rest
    return name if rest else f"library/{name}"


def _pull_scope(repository: str) -> str:
    return f"repository:{repository}:pull"


def _next_page(link: str | None, base: str) -> str | None:
    """The path of a ``Link: </v2/…?n=100&last=x>; rel="next"`` header, or None on the last page."""
    if not link:
        return None
    for part in link.split(","):
        target, _, parameters = part.partition(";")
        if 'rel="next"' in parameters.replace(" ", "") or "rel=next" in parameters.replace(" ", ""):
            url = target.strip().strip("<>")
            if url.startswith(base):
                url = url[len(base) :]
            return url if url.startswith("/v2/") else None
    return None


def _secret(path: str, name: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as error:
        raise RegistryRefused(f"cannot read the registry's {name} {path} ({error.strerror})") from None


def _json(body: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(body or b"{}")
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _error_code(body: bytes) -> str:
    errors = _json(body).get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return str(errors[0].get("code") or "")
    return ""


def _lower(items: Any) -> dict[str, str]:
    return {str(key).lower(): str(value) for key, value in items}
