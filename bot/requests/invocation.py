"""What a front end hands the core: a command typed, or a button clicked, by a person."""

from __future__ import annotations

from dataclasses import dataclass

from bot.audit.events import Actor
from bot.messages import ButtonAction, MessageRef


@dataclass(frozen=True)
class Invocation:
    """``/ops <text>`` typed by ``actor`` in ``channel``."""

    actor: Actor
    channel: str
    text: str
    delivery: str | None = None
    """A digest of the signed request that carried this (Slack sets it); a repeat is a replay."""


@dataclass(frozen=True)
class Click:
    """A button pressed by ``actor`` on the message at ``message``, or on their App Home (``home_view``)."""

    actor: Actor
    channel: str
    action: ButtonAction
    value: str
    message: MessageRef | None = None
    delivery: str | None = None
    home_view: str | None = None
    """The id of the App Home view the button was on (Slack sends it); None for a button on a message."""
