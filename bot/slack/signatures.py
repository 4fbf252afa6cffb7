"""Why a request's Slack signature was refused, said once in the log (never the values)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from bot.logs import ThrottledWarning

logger = logging.getLogger(__name__)

SIGNATURE_MAX_AGE_SECONDS = 300
"""Slack's replay window, as slack_sdk's SignatureVerifier applies it."""
REFUSALS_LOGGED_PER_MINUTE = 10


class RefusalLog:
    """One WARNING per request refused for its signature, so a 401 shows in opsbot's own logs.

    Throttled (a flood of forged requests must not flood the logs); never the body or the signature.
    """

    def __init__(self, *, per_minute: int = REFUSALS_LOGGED_PER_MINUTE, clock: Callable[[], float] = time.monotonic) -> None:
        self._warning = ThrottledWarning(logger, per_minute=per_minute, clock=clock)

    def refused(self, reason: str, client: str) -> None:
        self._warning.warn("refused a request to /slack/events (HTTP 401): %s; from %s", reason, client)


def signature_refusal_reason(headers: Mapping[str, str], now: float) -> str:
    """Why Slack's signature check failed, in the words of the troubleshooting guide (never the values)."""
    timestamp = headers.get("x-slack-request-timestamp")
    if not timestamp or not headers.get("x-slack-signature"):
        return "no Slack signature headers"
    try:
        skew = now - int(timestamp)
    except ValueError:
        return "the X-Slack-Request-Timestamp header is not a number"
    if abs(skew) > SIGNATURE_MAX_AGE_SECONDS:
        return f"stale timestamp, {skew:.0f} s from this pod's clock (clock skew, or a replayed request)"
    return "the signature does not match SLACK_SIGNING_SECRET (wrong or rotated secret, or a proxy changed the body)"
