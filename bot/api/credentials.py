"""Who is calling: a client of ``api.clients``, by a bearer token or an HMAC signature over the body.

Bearer: ``Authorization: Bearer <token>``; the config holds only the token's SHA-256, so the
comparison is of digests, in constant time, against every client (the time taken does not say
which client came close).

HMAC: ``X-Opsbot-Client``, ``X-Opsbot-Timestamp`` (Unix seconds) and ``X-Opsbot-Signature:
v1=<hex HMAC-SHA256(key, "v1:{timestamp}:{body}")>``, Slack's scheme with our own prefix. A
timestamp more than 5 minutes away is refused; within them, the signature is remembered across
replicas (``bot.store.replays``), so a captured request cannot be sent again.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from bot.api.problems import unauthenticated
from bot.catalog.config import ApiClient

SIGNATURE_WINDOW_SECONDS = 300
SIGNATURE_VERSION = "v1"


@dataclass(frozen=True)
class Caller:
    """An authenticated client; ``replay_digest`` is set for signed calls (each signature acts once)."""

    name: str
    client: ApiClient
    replay_digest: str | None = None

    @property
    def signs(self) -> bool:
        return self.client.hmac_key_file is not None


class ClientDirectory:
    """The configured clients with their keys read once (a key file is a mounted Secret)."""

    def __init__(self, clients: Mapping[str, ApiClient], *, clock: Callable[[], float] = time.time) -> None:
        self._clients = dict(clients)
        self._keys = {
            name: _read_secret(name, "hmac_key_file", client.hmac_key_file) for name, client in clients.items() if client.hmac_key_file
        }
        # Only digests are kept: a token read from its file is hashed at once and the text dropped.
        self._digests = {
            name: client.token_sha256 or hashlib.sha256(_read_secret(name, "token_file", client.token_file)).hexdigest()
            for name, client in clients.items()
            if client.token_sha256 or client.token_file
        }
        self._clock = clock

    def authenticate(self, headers: Mapping[str, str], body: bytes) -> Caller:
        """The caller, or ``ApiProblem`` 401 saying what was wrong (never which client almost matched)."""
        authorization = headers.get("authorization", "")
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise unauthenticated("The Authorization header must be `Bearer <token>`.")
            return self._bearer(token.strip())
        if "x-opsbot-signature" in headers or "x-opsbot-client" in headers:
            return self._signed(headers, body)
        raise unauthenticated("No credentials: send `Authorization: Bearer <token>` or the X-Opsbot-Client/-Timestamp/-Signature headers.")

    def _bearer(self, token: str) -> Caller:
        digest = hashlib.sha256(token.encode("utf-8")).hexdigest()
        found: str | None = None
        for name, expected in self._digests.items():
            if hmac.compare_digest(digest, expected):
                found = name
        if found is None:
            raise unauthenticated("That bearer token belongs to no configured client.", invalid_token=True)
        return Caller(found, self._clients[found])

    def _signed(self, headers: Mapping[str, str], body: bytes) -> Caller:
        name = headers.get("x-opsbot-client", "")
        stamp = headers.get("x-opsbot-timestamp", "")
        signature = headers.get("x-opsbot-signature", "")
        key = self._keys.get(name)
        if key is None:
            raise unauthenticated("X-Opsbot-Client names no client with an HMAC key.")
        if not stamp.isdigit():
            raise unauthenticated("X-Opsbot-Timestamp must be Unix seconds.")
        if abs(self._clock() - int(stamp)) > SIGNATURE_WINDOW_SECONDS:
            raise unauthenticated(f"X-Opsbot-Timestamp is more than {SIGNATURE_WINDOW_SECONDS} s from opsbot's clock; sign again now.")
        expected = sign(key, int(stamp), body)
        if not hmac.compare_digest(expected, signature):
            raise unauthenticated(
                f'X-Opsbot-Signature does not match: expected {SIGNATURE_VERSION}=HMAC-SHA256(key, "v1:<timestamp>:<body>") in hex.'
            )
        return Caller(name, self._clients[name], replay_digest=hashlib.sha256(f"api:{name}:{signature}".encode()).hexdigest())


def sign(key: bytes, timestamp: int, body: bytes) -> str:
    """``v1=<hex>``: what an HMAC client sends in X-Opsbot-Signature."""
    mac = hmac.new(key, f"{SIGNATURE_VERSION}:{timestamp}:".encode() + body, hashlib.sha256)
    return f"{SIGNATURE_VERSION}={mac.hexdigest()}"


def _read_secret(name: str, field: str, path: str | None) -> bytes:
    """A secret from its file (a mounted Secret), stripped; at least 32 bytes, so it cannot be guessed."""
    assert path is not None
    try:
        secret = Path(path).read_bytes().strip()
    except OSError as error:
        raise ValueError(f"api.clients.{name}.{field}={path}: cannot read the file ({error.strerror})") from None
    if len(secret) < 32:
        raise ValueError(f"api.clients.{name}.{field}={path}: the secret must be at least 32 bytes")
    return secret
