"""Front-end-neutral messages: what the bot says, before Slack or the shell draws it, and where it goes.

Text uses a small subset of Slack mrkdwn (``*bold*``, ```code```, ``<@U…>`` mentions,
``<#C…>`` channels). Anything a user typed goes through ``escape`` first, so a
parameter like ``<!channel>`` is shown, never executed as a mention.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from bot.redaction import redact_text


class ButtonAction(StrEnum):
    """Action ids of every button; the Slack layer routes on these."""

    APPROVE = "opsbot_approve"
    REJECT = "opsbot_reject"
    CANCEL = "opsbot_cancel"
    INCIDENT_ROLLBACK = "opsbot_incident_rollback"
    INCIDENT_ACK = "opsbot_incident_ack"


@dataclass(frozen=True)
class Button:
    action: ButtonAction
    label: str
    value: str
    style: str | None = None  # "primary" | "danger" | None


@dataclass(frozen=True)
class Message:
    """A message: a fallback ``text`` (notifications, screen readers) and structured parts."""

    text: str
    title: str | None = None
    sections: tuple[str, ...] = ()
    fields: tuple[tuple[str, str], ...] = ()
    buttons: tuple[Button, ...] = ()
    context: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Every reply passes here, whatever the front end: a token or URL password that reached
        # a message (a backend error echoing its request, a user pasting one) is never shown.
        object.__setattr__(self, "text", redact_text(self.text))
        object.__setattr__(self, "title", redact_text(self.title) if self.title is not None else None)
        object.__setattr__(self, "sections", tuple(redact_text(section) for section in self.sections))
        object.__setattr__(self, "fields", tuple((name, redact_text(value)) for name, value in self.fields))
        object.__setattr__(self, "context", tuple(redact_text(line) for line in self.context))

    @classmethod
    def plain(cls, text: str) -> Message:
        return cls(text=text, sections=(text,))


@dataclass(frozen=True)
class MessageRef:
    """Where a posted message lives, so it can be updated or replied to in a thread."""

    channel: str
    ts: str

    def as_dict(self) -> dict[str, str]:
        return {"channel": self.channel, "ts": self.ts}

    @classmethod
    def from_dict(cls, value: dict[str, str] | None) -> MessageRef | None:
        if not value or "channel" not in value or "ts" not in value:
            return None
        return cls(channel=str(value["channel"]), ts=str(value["ts"]))


def escape(value: object) -> str:
    """Make user-supplied text inert in mrkdwn: ``&``, ``<``, ``>`` are Slack's control characters."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_FORMATTING = str.maketrans({"*": "∗", "`": "ˋ", "~": "∼"})
_DIRECTION_CONTROLS = dict.fromkeys([0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)])


def plain_text(value: object) -> str:
    """Text someone typed (a lock reason), shown as typed: no bold, code, strike-through or links, no direction tricks.

    ``escape`` makes mentions inert; Slack would still format ``*x*``, ``~x~`` and ```x```, turn
    ``_x_`` into italics and URLs into links in the bot's own voice. Look-alike characters keep
    the words readable; a zero-width space after ``://`` stops the auto-link; right-to-left
    overrides, which can make a reason read backwards, are removed.
    """
    text = escape(value).translate(_DIRECTION_CONTROLS).translate(_FORMATTING)
    text = re.sub(r"(?<![\w])_|_(?![\w])", "＿", text)
    return text.replace("://", ":\u200b//")


def code(value: object) -> str:
    """Inline code, escaped; backticks inside are replaced so they cannot end the span."""
    return "`" + escape(value).replace("`", "ˋ") + "`"


API_CLIENT_PREFIX = "client:"
"""How an inbound-API client is stored where a Slack user id would be (requester, actor): Slack ids never hold a colon."""


def api_client_of(user_id: str) -> str | None:
    """The API client's name if ``user_id`` names one (``client:ci-release``), else None (a person, or opsbot)."""
    return user_id[len(API_CLIENT_PREFIX) :] if user_id.startswith(API_CLIENT_PREFIX) else None


def mention(user_id: str) -> str:
    """A person as a Slack mention; an API client by name (a mention of ``client:…`` would show as a broken user)."""
    client = api_client_of(user_id)
    if client is not None:
        return f"API client {code(client)}"
    return f"<@{escape(user_id)}>" if user_id else "someone"


def channel_link(channel: str) -> str:
    return f"<#{escape(channel)}>"


class Notifier(Protocol):
    """Posts, updates and threads messages in channels: Slack in production, the terminal in the shell.

    Called from worker threads, never on the Slack ack path; an implementation may block (Slack
    rate limits) but must not raise for delivery problems: a failed notification is logged and
    counted, the operation it reports on goes on.
    """

    def post(self, channel: str, message: Message, *, thread: MessageRef | None = None) -> MessageRef | None:
        """Post a message; returns where it landed (None if it could not be posted)."""

    def update(self, ref: MessageRef, message: Message) -> None:
        """Replace a posted message in place."""

    def upload(self, channel: str, title: str, content: str | bytes, *, thread: MessageRef | None = None) -> None:
        """Attach long output (text) or a picture (PNG bytes) as a file; ``title`` names it (``.png`` for a picture)."""


class Replier(Protocol):
    """Answers only the person who acted (an ephemeral message in Slack)."""

    def private(self, message: Message) -> None:
        """Tell the person who acted, and only them."""
