"""``response_url`` endpoints: how the bot answers slash commands and buttons.

Slack lets an app use a response_url at most five times within thirty
minutes of the interaction. Past that the URL is dead and Slack answers
HTTP 404 (``used_url`` / ``expired_url``) instead of posting; a bot that
streams progress through one response_url loses messages silently in
production unless tests hit the same wall, so the fake enforces both.
Bodies are JSON: ``text``/``blocks``, ``response_type`` (``ephemeral``, the
default, or ``in_channel``), ``replace_original``, ``delete_original`` and
``thread_ts``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .arguments import flag, optional_str
from .records import ApiError, Ephemeral, JsonDict, Message
from .workspace import Content, Workspace, parse_content

RESPONSE_PATH = "/response/"
MAX_USES = 5
LIFETIME_SECONDS = 30 * 60
REPLACE_ALL = {"text": None, "blocks": None, "attachments": None}
"""chat.update keys meaning "replace every part": replace_original drops old blocks."""


@dataclass
class ResponseUrl:
    """One issued response_url and what it has been used for."""

    token: str
    channel: str
    user: str
    created_at: float
    target_ts: str | None = None
    uses: int = 0


def respond(ws: Workspace, hook: ResponseUrl, body: object, now: float) -> JsonDict:
    """Apply one POST to a response_url; raises ApiError with a 4xx status."""
    if now - hook.created_at > LIFETIME_SECONDS:
        raise ApiError("expired_url", status=404)
    if hook.uses >= MAX_USES:
        raise ApiError("used_url", status=404)
    if not isinstance(body, dict):
        raise ApiError("invalid_payload", status=400)
    if flag(body, "delete_original"):
        _delete_original(ws, hook)
    else:
        _deliver(ws, hook, body, _content(body))
    hook.uses += 1
    return {}


def _content(body: JsonDict) -> Content:
    try:
        content = parse_content(body)
    except ApiError as exc:
        raise ApiError(exc.code, status=400, extra=exc.extra) from exc
    if content.empty:
        raise ApiError("no_text", status=400)
    return content


def _deliver(ws: Workspace, hook: ResponseUrl, body: JsonDict, content: Content) -> None:
    if flag(body, "replace_original") and _replace_original(ws, hook, content):
        return
    if body.get("response_type") == "in_channel":
        thread_ts = ws.thread_root(hook.channel, optional_str(body, "thread_ts"))
        message = ws.post(hook.channel, content, thread_ts=thread_ts, via="response_url")
        hook.target_ts = hook.target_ts or message.ts
    else:
        thread_ts = optional_str(body, "thread_ts")
        ephemeral = ws.post_ephemeral(hook.channel, hook.user, content, thread_ts=thread_ts, via="response_url")
        hook.target_ts = hook.target_ts or ephemeral.ts


def _replace_original(ws: Workspace, hook: ResponseUrl, content: Content) -> bool:
    """Replace the message the interaction came from; False if there is none."""
    original = _original(ws, hook)
    if isinstance(original, Message):
        ws.update(hook.channel, original.ts, REPLACE_ALL, content)
    elif isinstance(original, Ephemeral):
        ws.replace_ephemeral(original, content)
    return original is not None


def _delete_original(ws: Workspace, hook: ResponseUrl) -> None:
    original = _original(ws, hook)
    if isinstance(original, Message):
        ws.delete(hook.channel, original.ts)
    elif isinstance(original, Ephemeral):
        ws.replace_ephemeral(original, None)
    else:
        raise ApiError("message_not_found", status=404)


def _original(ws: Workspace, hook: ResponseUrl) -> Message | Ephemeral | None:
    if hook.target_ts is None:
        return None
    message = ws.find(hook.channel, hook.target_ts)
    if message is not None:
        return message
    for ephemeral in ws.ephemerals:
        if ephemeral.ts == hook.target_ts and ephemeral.channel == hook.channel:
            return ephemeral
    return None
