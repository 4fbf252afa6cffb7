"""Who opsbot is to GitHub's REST API: a token (``OPSBOT_GITHUB_TOKEN_FILE``) or a GitHub App installation.

A GitHub App is the safer choice for an organisation: its installation tokens expire after an
hour and carry only the permissions granted to the App. opsbot signs a short JSON Web Token with
the App's private key (RS256, ``iss`` = the App's id, at most 10 minutes long, backdated a minute
for clock drift, as GitHub asks), exchanges it at ``POST /app/installations/{id}/access_tokens``
and keeps the installation token until five minutes before it expires.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from bot.errors import ActionFailed, TemporaryActionError

JWT_LIFETIME_SECONDS = 540
CLOCK_DRIFT_SECONDS = 60
RENEW_BEFORE_EXPIRY_SECONDS = 300
REQUEST_TIMEOUT_SECONDS = 15.0
API_VERSION = "2022-11-28"


@dataclass(frozen=True)
class GitHubApp:
    """A GitHub App installation: the App's id, its private key (PEM) and the installation to act as."""

    app_id: str
    installation_id: str
    private_key_pem: str


class GitHubCredentials:
    """Hands out the bearer token for a call: the configured token, else a fresh-enough App installation token."""

    def __init__(self, *, token: str | None = None, app: GitHubApp | None = None) -> None:
        self._token = token
        self._app = app
        self._lock = threading.Lock()
        self._cached: dict[str, tuple[str, float]] = {}

    @property
    def configured(self) -> bool:
        return self._token is not None or self._app is not None

    def secrets(self) -> list[str]:
        """Every secret these credentials may put on the wire, to scrub from error text."""
        return [secret for secret in (self._token, *(token for token, _ in self._cached.values())) if secret]

    def token_for(self, api_url: str) -> str:
        """A bearer token for ``api_url`` (an App's installation token is per API host)."""
        if self._token is not None:
            return self._token
        if self._app is None:
            raise ActionFailed(
                "opsbot has no GitHub credentials: set OPSBOT_GITHUB_TOKEN_FILE, or OPSBOT_GITHUB_APP_ID, "
                "OPSBOT_GITHUB_APP_INSTALLATION_ID and OPSBOT_GITHUB_APP_PRIVATE_KEY_FILE (docs/runbooks.md)"
            )
        with self._lock:
            cached = self._cached.get(api_url)
            if cached is not None and cached[1] - RENEW_BEFORE_EXPIRY_SECONDS > time.time():
                return cached[0]
            token, expires = _installation_token(api_url, self._app)
            self._cached[api_url] = (token, expires)
            return token


def app_jwt(app: GitHubApp, now: float) -> str:
    """The App's JSON Web Token (RS256), valid from a minute ago for nine minutes."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    header = {"alg": "RS256", "typ": "JWT"}
    claims = {"iat": int(now) - CLOCK_DRIFT_SECONDS, "exp": int(now) + JWT_LIFETIME_SECONDS, "iss": app.app_id}
    signing_input = f"{_b64(json.dumps(header, separators=(',', ':')).encode())}.{_b64(json.dumps(claims, separators=(',', ':')).encode())}"
    try:
        key = serialization.load_pem_private_key(app.private_key_pem.encode(), password=None)
    except (ValueError, TypeError):
        raise ActionFailed("OPSBOT_GITHUB_APP_PRIVATE_KEY is not a PEM private key (download one from the App's settings)") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ActionFailed("OPSBOT_GITHUB_APP_PRIVATE_KEY must be the App's RSA private key")
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64(signature)}"


def _installation_token(api_url: str, app: GitHubApp) -> tuple[str, float]:
    import urllib.error  # the stdlib HTTP client loads with a first request, not with the gitops actions (`opsbot validate`)
    import urllib.request

    url = f"{api_url.rstrip('/')}/app/installations/{app.installation_id}/access_tokens"
    request = urllib.request.Request(url, data=b"{}", method="POST")  # noqa: S310 - the configured API URL
    request.add_header("Authorization", f"Bearer {app_jwt(app, time.time())}")
    request.add_header("Accept", "application/vnd.github+json")
    request.add_header("X-GitHub-Api-Version", API_VERSION)
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_SECONDS) as response:  # noqa: S310
            answer = json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        detail = error.read()[:200].decode("utf-8", errors="replace")
        if error.code >= 500:
            raise TemporaryActionError(f"GitHub could not issue an installation token ({error.code}): {detail}") from None
        raise ActionFailed(
            f"GitHub refused the App's token request ({error.code}: {detail}); check the App id, installation id and private key"
        ) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        raise TemporaryActionError(f"cannot reach the GitHub API for an installation token: {getattr(error, 'reason', error)}") from None
    token = str(answer.get("token") or "")
    if not token:
        raise ActionFailed("GitHub's answer to the App's token request carried no token")
    try:
        expires = datetime.fromisoformat(str(answer.get("expires_at")).replace("Z", "+00:00")).timestamp()
    except ValueError:
        expires = time.time() + 3_600  # GitHub's installation tokens last an hour
    return token, expires


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
