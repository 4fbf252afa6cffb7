"""The Slack ``Notifier``: channel messages through the Web API, from worker threads only.

Why a sync ``WebClient`` with slack_sdk's retry handlers: on HTTP 429 they sleep for
``Retry-After`` and try again, which is right in a worker thread (the run waits, then its
message still ends right) and would be wrong on the ack path, where nothing of this module
is ever called. Delivery problems (``ok: false``, exhausted retries, a network error) are
logged and counted, never raised: the core goes on with the operation a message is about.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web import SlackResponse

from bot.messages import Message, MessageRef
from bot.metrics import record_slack_error, record_slack_ratelimited
from bot.requests.home import HomeView
from bot.requests.home_surface import PublishOutcome
from bot.settings import Settings
from bot.slack.blocks import SlackMessage, fallback_text, render, render_parts
from bot.slack.home import SlackHomeSurface

logger = logging.getLogger(__name__)

RATE_LIMIT_RETRIES = 3
CONNECTION_RETRIES = 2
HTTP_TIMEOUT_SECONDS = 15
MAX_REMEMBERED_OVERFLOWS = 256


class CountingRateLimitRetryHandler(RateLimitErrorRetryHandler):
    """slack_sdk's 429 handler (sleep ``Retry-After``, retry) that also counts each 429 by method."""

    def prepare_for_next_attempt(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        record_slack_ratelimited(method_from_url(request.url))
        logger.info("Slack rate-limited %s; retrying after Retry-After", method_from_url(request.url))
        super().prepare_for_next_attempt(state=state, request=request, response=response, error=error)


def retry_handlers() -> list[RetryHandler]:
    """Retry 429s after Retry-After and dropped connections; never anything that could double-post."""
    return [
        ConnectionErrorRetryHandler(max_retry_count=CONNECTION_RETRIES),
        CountingRateLimitRetryHandler(max_retry_count=RATE_LIMIT_RETRIES),
    ]


def make_web_client(settings: Settings) -> WebClient:
    """The one sync Web API client of a process, pointed at ``SLACK_API_URL`` (tests, GovSlack)."""
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    return WebClient(
        token=token, base_url=api_base_url(settings.slack_api_url), timeout=HTTP_TIMEOUT_SECONDS, retry_handlers=retry_handlers()
    )


def api_base_url(url: str) -> str:
    """slack_sdk joins method names onto the base URL, so it must end with a slash."""
    return url if url.endswith("/") else url + "/"


def method_from_url(url: str | None) -> str:
    """``https://slack.com/api/chat.update`` → ``chat.update`` (for metric labels)."""
    if not url:
        return "unknown"
    return url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0] or "unknown"


def deliver(method: str, call: Callable[[], SlackResponse]) -> SlackResponse | None:
    """Make one Web API call; on any failure log it, count it and return None."""
    try:
        return call()
    except SlackApiError as error:
        code = str(error.response.get("error") or f"http_{error.response.status_code}")
        failed = method_from_url(getattr(error.response, "api_url", None)) if method.startswith("files") else method
        if error.response.status_code == 429:
            record_slack_ratelimited(failed)
        record_slack_error(failed, code)
        logger.warning("Slack %s failed: %s", failed, code)
    except Exception as error:
        record_slack_error(method, type(error).__name__)
        logger.warning("Slack %s failed: %s", method, type(error).__name__, exc_info=True)
    return None


class SlackNotifier:
    """Posts, updates and threads the bot's channel messages; implements ``bot.notifier.Notifier``.

    It also publishes people's App Homes (``bot.requests.app_home.HomeSurface``), so the core gets
    its whole Slack output from the one object every front end already hands it.
    """

    def __init__(self, client: WebClient) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._overflows: OrderedDict[MessageRef, str] = OrderedDict()
        self._home = SlackHomeSurface(client)

    def publish_home(self, view: HomeView) -> PublishOutcome:
        return self._home.publish_home(view)

    def time_zone_of(self, user_id: str) -> str | None:
        return self._home.time_zone_of(user_id)

    def post(self, channel: str, message: Message, *, thread: MessageRef | None = None) -> MessageRef | None:
        rendered = _render(message)
        response = deliver(
            "chat.postMessage",
            lambda: self._client.chat_postMessage(
                channel=channel,
                text=rendered.text,
                blocks=rendered.blocks or None,
                thread_ts=thread.ts if thread else None,
                unfurl_links=False,
                unfurl_media=False,
            ),
        )
        if response is None:
            return None
        ref = MessageRef(channel=str(response.get("channel") or channel), ts=str(response.get("ts")))
        if rendered.overflow is not None:
            self._upload_overflow(ref, rendered.overflow)
        return ref

    def update(self, ref: MessageRef, message: Message) -> None:
        rendered = _render(message)
        deliver(
            "chat.update",
            lambda: self._client.chat_update(channel=ref.channel, ts=ref.ts, text=rendered.text, blocks=rendered.blocks or None),
        )
        if rendered.overflow is not None:
            self._upload_overflow(ref, rendered.overflow)

    def upload(self, channel: str, title: str, content: str | bytes, *, thread: MessageRef | None = None) -> None:
        """Attach ``content`` as a file; if Slack refuses a text upload, post it in parts in the thread instead."""
        response = deliver(
            "files.upload_v2",
            lambda: self._client.files_upload_v2(
                channel=channel, content=content, filename=_filename(title), title=title, thread_ts=thread.ts if thread else None
            ),
        )
        if response is not None:
            return
        if isinstance(content, bytes):
            logger.warning("could not upload %s; a picture cannot be posted as text", title)
            return
        logger.info("posting %s in parts instead of as a file", title)
        for part in render_parts(Message(text=title, title=title, sections=(content,))):
            self._post_rendered(channel, part, thread)

    # -- helpers ---------------------------------------------------------------------------

    def _post_rendered(self, channel: str, rendered: SlackMessage, thread: MessageRef | None) -> None:
        deliver(
            "chat.postMessage",
            lambda: self._client.chat_postMessage(
                channel=channel, text=rendered.text, blocks=rendered.blocks or None, thread_ts=thread.ts if thread else None
            ),
        )

    def _upload_overflow(self, ref: MessageRef, content: str) -> None:
        """Attach the full text once per message and content (updates repeat; the file should not)."""
        digest = hashlib.sha256(content.encode("utf-8")).hexdigest()
        with self._lock:
            if self._overflows.get(ref) == digest:
                return
            self._overflows[ref] = digest
            self._overflows.move_to_end(ref)
            while len(self._overflows) > MAX_REMEMBERED_OVERFLOWS:
                self._overflows.popitem(last=False)
        self.upload(ref.channel, f"message-{ref.ts}.txt", content, thread=ref)


def _render(message: Message) -> SlackMessage:
    """Block Kit for ``message``; a rendering bug degrades to plain text instead of losing the message."""
    try:
        return render(message)
    except Exception:
        logger.exception("could not render a message as Block Kit; sending its text only")
        text = fallback_text(message)
        return SlackMessage(text=text, blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": text}}])


def _filename(title: str) -> str:
    safe = "".join(char if char.isalnum() or char in "-_." else "-" for char in title).strip("-.") or "output"
    return safe if "." in safe else safe + ".txt"
