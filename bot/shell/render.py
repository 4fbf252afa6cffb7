"""Draw a ``Message`` as terminal text: mentions become names, buttons get numbers."""

from __future__ import annotations

import re
from collections.abc import Callable

from bot.messages import Message

_MENTION = re.compile(r"<@([A-Z0-9]+)>")
_CHANNEL = re.compile(r"<#([A-Za-z0-9_.-]+)(?:\|[^>]*)?>")
_BOLD = re.compile(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])")
_LINK = re.compile(r"<(https?://[^|>\s]+)\|([^>]+)>")


def to_text(mrkdwn: str, name_of: Callable[[str], str]) -> str:
    """The subset of mrkdwn we emit, as plain text (``&lt;`` back to ``<``)."""
    text = _MENTION.sub(lambda found: "@" + name_of(found.group(1)), mrkdwn)
    text = _CHANNEL.sub(lambda found: "#" + found.group(1), text)
    text = _BOLD.sub(lambda found: found.group(1), text)
    text = _LINK.sub(lambda found: f"{found.group(2)} ({found.group(1)})", text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def render_message(message: Message, name_of: Callable[[str], str], button_numbers: list[int]) -> list[str]:
    """Lines for a message; ``button_numbers`` gives each button's number for ``/click``."""
    lines: list[str] = []
    if message.title:
        lines.append(to_text(message.title, name_of))
    if message.fields:
        lines.append(" | ".join(f"{to_text(label, name_of)}: {to_text(value, name_of)}" for label, value in message.fields))
    for section in message.sections:
        lines.extend(to_text(section, name_of).splitlines())
    if message.buttons:
        lines.append("  ".join(f"[{number}] {button.label}" for number, button in zip(button_numbers, message.buttons, strict=True)))
    lines.extend(f"({to_text(line, name_of)})" for line in message.context)
    if not lines:
        lines.append(to_text(message.text, name_of))
    return lines
