"""A Slack user's verified email, for identity templates that use ``{email}`` and AWS SourceIdentity.

Why ``users.info`` and a cache: the email is in ``user.profile.email`` only when the app has the
``users:read.email`` scope; it changes rarely, and the lookup is a Tier 4 call made for every
request. Why ``None`` on any failure: the identity map then fails closed for a template that
needs an email (it never guesses a name), and falls back to the Slack id for SourceIdentity.
An email Slack marks unconfirmed (``is_email_confirmed: false``) is not used.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

logger = logging.getLogger(__name__)

DEFAULT_TTL_SECONDS = 900.0


class SlackEmails:
    """An ``EmailLookup``: Slack user id → verified email or None, cached for ``ttl_seconds``."""

    def __init__(self, client: WebClient, *, ttl_seconds: float = DEFAULT_TTL_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[str | None, float]] = {}

    def __call__(self, user_id: str) -> str | None:
        with self._lock:
            cached = self._cache.get(user_id)
            if cached is not None and self._clock() - cached[1] < self._ttl:
                return cached[0]
        email = self._fetch(user_id)
        with self._lock:
            self._cache[user_id] = (email, self._clock())
        return email

    def _fetch(self, user_id: str) -> str | None:
        try:
            user = self._client.users_info(user=user_id).get("user") or {}
        except SlackApiError as error:
            logger.warning("could not read the email of %s from Slack (%s)", user_id, error.response.get("error"))
            return None
        if not isinstance(user, dict) or user.get("is_email_confirmed") is False:
            return None
        email = (user.get("profile") or {}).get("email")
        return str(email) if email else None
