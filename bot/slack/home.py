"""The App Home's Slack side (a ``HomeSurface``): ``views.publish`` a person's home, and their time zone.

Why a client of its own, without slack_sdk's 429 handler: that handler sleeps ``Retry-After``
and tries again, holding the one publishing thread while other people's homes wait, and
retrying a home that may be stale by then. Here a ``ratelimited`` answer is handed back
(``RateLimited``) and the schedule decides when, and with what, to publish again.

The time zone is ``users.info``'s ``tz`` (scope ``users:read``), cached: it changes when a
person travels, not between two publishes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler

from bot.metrics import record_slack_error, record_slack_ratelimited
from bot.requests.home import HomeView
from bot.requests.home_surface import NotPublished, Published, PublishOutcome, RateLimited
from bot.slack.home_blocks import home_view

logger = logging.getLogger(__name__)

ZONE_TTL_SECONDS = 3_600.0
DEFAULT_RETRY_AFTER_SECONDS = 30.0
"""When Slack says ``ratelimited`` without a ``Retry-After`` (it always sends one; a proxy may not)."""


class SlackHomeSurface:
    """Publishes homes with ``views.publish``; reads time zones with ``users.info``."""

    def __init__(self, client: WebClient, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._client = WebClient(
            token=client.token,
            base_url=client.base_url,
            timeout=client.timeout,
            retry_handlers=[ConnectionErrorRetryHandler(max_retry_count=2)],
        )
        self._clock = clock
        self._lock = threading.Lock()
        self._zones: dict[str, tuple[str | None, float]] = {}

    def publish_home(self, view: HomeView) -> PublishOutcome:
        try:
            response = self._client.views_publish(user_id=view.user_id, view=home_view(view))
        except SlackApiError as error:
            code = str(error.response.get("error") or f"http_{error.response.status_code}")
            if error.response.status_code == 429 or code == "ratelimited":
                record_slack_ratelimited("views.publish")
                return RateLimited(_retry_after(error))
            record_slack_error("views.publish", code)
            return NotPublished(code)
        except Exception as error:  # noqa: BLE001 - the network: said, counted, tried again on the next change
            record_slack_error("views.publish", type(error).__name__)
            return NotPublished(type(error).__name__)
        published = response.get("view")
        view_id = published.get("id") if isinstance(published, dict) else None
        return Published(view_id if isinstance(view_id, str) else None)

    def time_zone_of(self, user_id: str) -> str | None:
        with self._lock:
            cached = self._zones.get(user_id)
            if cached is not None and self._clock() - cached[1] < ZONE_TTL_SECONDS:
                return cached[0]
        zone = self._fetch_zone(user_id)
        with self._lock:
            self._zones[user_id] = (zone, self._clock())
        return zone

    def _fetch_zone(self, user_id: str) -> str | None:
        try:
            user = self._client.users_info(user=user_id).get("user") or {}
        except SlackApiError as error:
            logger.warning("could not read the time zone of %s from Slack (%s)", user_id, error.response.get("error"))
            return None
        except Exception as error:  # noqa: BLE001 - the home is then drawn in UTC, and says so
            logger.warning("could not read the time zone of %s from Slack (%s)", user_id, type(error).__name__)
            return None
        zone = user.get("tz") if isinstance(user, dict) else None
        return zone if isinstance(zone, str) and zone else None


def _retry_after(error: SlackApiError) -> float:
    headers = error.response.headers or {}
    raw = headers.get("Retry-After") or headers.get("retry-after")
    if isinstance(raw, list):
        raw = raw[0] if raw else None
    try:
        return max(0.0, float(raw)) if raw is not None else DEFAULT_RETRY_AFTER_SECONDS
    except ValueError:
        return DEFAULT_RETRY_AFTER_SECONDS
