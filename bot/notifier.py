"""Where the bot's messages go: Slack in production, the terminal in ``opsbot shell``.

The core calls these methods from worker threads, never on the Slack ack path; an
implementation may block (Slack rate limits) but must not raise for delivery problems:
a failed notification is logged and counted, the operation it reports on goes on.
"""

from __future__ import annotations

from typing import Protocol

from bot.messages import Message, MessageRef


class Notifier(Protocol):
    """Posts, updates and threads messages in channels."""

    def post(self, channel: str, message: Message, *, thread: MessageRef | None = None) -> MessageRef | None:
        """Post a message; returns where it landed (None if it could not be posted)."""

    def update(self, ref: MessageRef, message: Message) -> None:
        """Replace a posted message in place."""

    def upload(self, channel: str, title: str, content: str, *, thread: MessageRef | None = None) -> None:
        """Attach long output as a file (it would not fit in a message)."""


class Replier(Protocol):
    """Answers only the person who acted (an ephemeral message in Slack)."""

    def private(self, message: Message) -> None:
        """Tell the person who acted, and only them."""
