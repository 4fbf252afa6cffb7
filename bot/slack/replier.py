"""Private replies to the person who typed a command or clicked a button.

The interaction's ``response_url`` comes first: it works even in channels the bot was never
invited to. Slack allows five uses within thirty minutes, so the replier counts its uses and
watches the clock; once the URL is spent, expired or refused, it falls back to
``chat.postEphemeral`` (which needs the bot to see the channel). Runs in worker threads only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from slack_sdk import WebClient
from slack_sdk.webhook import WebhookClient

from bot.messages import Message
from bot.metrics import record_slack_error
from bot.slack.blocks import SlackMessage, fallback_text, render_parts
from bot.slack.notifier import HTTP_TIMEOUT_SECONDS, deliver, retry_handlers

logger = logging.getLogger(__name__)

RESPONSE_URL_MAX_USES = 5
RESPONSE_URL_LIFETIME_SECONDS = 30 * 60 - 60
"""Slack's thirty minutes, less a minute so a use never races the expiry."""


class SlackReplier:
    """Implements ``bot.notifier.Replier`` for one interaction."""

    def __init__(
        self,
        client: WebClient,
        *,
        user_id: str,
        channel: str,
        response_url: str | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._user_id = user_id
        self._channel = channel
        self._response_url = response_url
        self._clock = clock
        self._issued_at = clock()
        self._uses = 0
        self._lock = threading.Lock()

    def private(self, message: Message) -> None:
        for part in _parts(message):
            if not (self._claim_response_url_use() and self._via_response_url(part)):
                self._via_ephemeral(part)

    @property
    def response_url_uses(self) -> int:
        return self._uses

    def _claim_response_url_use(self) -> bool:
        with self._lock:
            usable = (
                self._response_url is not None
                and self._uses < RESPONSE_URL_MAX_USES
                and self._clock() - self._issued_at < RESPONSE_URL_LIFETIME_SECONDS
            )
            if usable:
                self._uses += 1
            return usable

    def _via_response_url(self, part: SlackMessage) -> bool:
        assert self._response_url is not None
        try:
            webhook = WebhookClient(self._response_url, timeout=HTTP_TIMEOUT_SECONDS, retry_handlers=retry_handlers())
            # replace_original=False: a reply to a click must not overwrite the approval message.
            response = webhook.send(text=part.text, blocks=part.blocks or None, response_type="ephemeral", replace_original=False)
        except Exception as error:  # noqa: BLE001 - fall back to chat.postEphemeral
            record_slack_error("response_url", type(error).__name__)
            logger.warning("response_url failed (%s); falling back to chat.postEphemeral", type(error).__name__)
            return False
        if response.status_code == 200:
            return True
        record_slack_error("response_url", f"http_{response.status_code}")
        logger.info("response_url answered %s (%.100s); falling back to chat.postEphemeral", response.status_code, response.body)
        with self._lock:
            self._uses = RESPONSE_URL_MAX_USES  # a 404 means used up or expired: stop trying it
        return False

    def _via_ephemeral(self, part: SlackMessage) -> None:
        deliver(
            "chat.postEphemeral",
            lambda: self._client.chat_postEphemeral(channel=self._channel, user=self._user_id, text=part.text, blocks=part.blocks or None),
        )


def _parts(message: Message) -> list[SlackMessage]:
    """Block Kit parts of a reply; a rendering bug degrades to its plain text (the core's error path calls this too)."""
    try:
        return render_parts(message)
    except Exception:
        logger.exception("could not render a private reply as Block Kit; sending its text only")
        return [SlackMessage(text=fallback_text(message), blocks=[])]
