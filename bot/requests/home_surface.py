"""Where App Homes are drawn, as the request wing sees it: publish a ``HomeView``, tell a person's time zone.

``bot.slack.home`` implements it with ``views.publish`` and ``users.info`` (the ``SlackNotifier``
carries it, so the core finds it on the notifier it is given); the shell has none, and then no
home is published. Delivery problems come back as values, never as exceptions: a home is
refreshed again on the next change anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from bot.requests.home import HomeView


@dataclass(frozen=True)
class Published:
    view_id: str | None
    """The home view's id as Slack answered it: clicks from the home must come from this view."""


@dataclass(frozen=True)
class RateLimited:
    retry_after: float
    """Seconds Slack asked to wait (``Retry-After``) before any home is published again."""


@dataclass(frozen=True)
class NotPublished:
    reason: str
    """Slack's error code (``invalid_arguments``, ``user_not_found``…) or the network error's name, for the log."""


PublishOutcome = Published | RateLimited | NotPublished


@runtime_checkable
class HomeSurface(Protocol):
    """Where homes are drawn (Slack's ``views.publish``); must not raise for delivery problems."""

    def publish_home(self, view: HomeView) -> PublishOutcome:
        """Publish ``view`` as its person's home."""

    def time_zone_of(self, user_id: str) -> str | None:
        """The person's IANA time zone (their Slack profile), None if unknown."""
