"""Neutral ``Message`` → Block Kit, within Slack's limits, never cutting text silently.

Slack rejects a whole message (``invalid_blocks``) when one block breaks a limit, so every
limit is handled here by construction: section text over 3,000 characters is split into
several sections (at line breaks, never inside an ``&amp;`` entity, a ``<@U…>`` mention or a
code fence); more than 10 fields, 25 buttons or 10 context elements spill into further
blocks. What still does not fit one message (more than 50 blocks, or more text than a
person reads in a channel) is reported as ``overflow``: the caller posts what fits, says
so in the message, and uploads the whole text as a file. Blocks are built with
``slack_sdk.models.blocks`` so each one is validated before it leaves the process.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from bot.messages import Button, Message
from bot.slack.payloads import action_id_for

logger = logging.getLogger(__name__)

MAX_BLOCKS = 50
SECTION_TEXT_LIMIT = 3_000
FIELD_TEXT_LIMIT = 2_000
FIELDS_PER_SECTION = 10
HEADER_TEXT_LIMIT = 150
BUTTONS_PER_BLOCK = 25
BUTTON_LABEL_LIMIT = 75
BUTTON_VALUE_LIMIT = 2_000
CONTEXT_ELEMENTS_PER_BLOCK = 10
CONTEXT_TEXT_LIMIT = 2_000
MESSAGE_TEXT_BUDGET = 12_000
"""Past this much text a channel message is a wall nobody reads: the rest goes to a file."""
FALLBACK_TEXT_LIMIT = 3_000
"""The top-level ``text`` is only the notification and screen-reader line; blocks carry the content."""
MAX_PRIVATE_PARTS = 8
FENCE = "```"
_FENCE_RESERVE = 2 * (len(FENCE) + 1)
_MENTION_CHARS = ("<@", "<#", "<!", "<http", "<mailto")


@dataclass(frozen=True)
class SlackMessage:
    """What ``chat.postMessage`` / ``chat.update`` / a response_url take: text, blocks, and what did not fit."""

    text: str
    blocks: list[dict[str, Any]]
    overflow: str | None = None

    def chars(self) -> int:
        return sum(_block_chars(block) for block in self.blocks)


def render(message: Message) -> SlackMessage:
    """One channel message; when it cannot hold everything, ``overflow`` is the full text to upload."""
    parts = _Parts.of(message)
    blocks = parts.all()
    if len(blocks) <= MAX_BLOCKS and sum(map(_block_chars, blocks)) <= MESSAGE_TEXT_BUDGET:
        return SlackMessage(text=fallback_text(message), blocks=blocks)
    full = as_plain_text(message)
    note = _context(f"✂️ This message is too long for Slack ({len(full):,} characters): the full text is attached as a file in its thread.")
    fixed = [*parts.head, *parts.actions, *parts.context, note]
    kept = _take_within(parts.body, MAX_BLOCKS - len(fixed), MESSAGE_TEXT_BUDGET - sum(map(_block_chars, fixed)))
    blocks = [*parts.head, *kept, *parts.actions, *parts.context, note]
    return SlackMessage(text=fallback_text(message), blocks=blocks, overflow=full)


def render_parts(message: Message, *, max_parts: int = MAX_PRIVATE_PARTS) -> list[SlackMessage]:
    """Several messages that together carry everything (for private replies, which cannot have files).

    Buttons and context go with the last part. Past ``max_parts`` the rest is dropped *and said
    so* in the last part, with the number of characters left out.
    """
    parts = _Parts.of(message)
    chunks = _chunk([*parts.head, *parts.body], MAX_BLOCKS, MESSAGE_TEXT_BUDGET)
    tail = [*parts.actions, *parts.context]
    if chunks and len(chunks[-1]) + len(tail) <= MAX_BLOCKS and _chars(chunks[-1]) + _chars(tail) <= MESSAGE_TEXT_BUDGET:
        chunks[-1] = chunks[-1] + tail
    elif tail:
        chunks.append(tail)
    if len(chunks) > max_parts:
        left_out = sum(_chars(chunk) for chunk in chunks[max_parts - 1 :])
        note = _context(f"✂️ {left_out:,} more characters were not shown: the reply was too long for Slack. Narrow the command down.")
        last = _take_within(chunks[max_parts - 1], MAX_BLOCKS - len(tail) - 1, MESSAGE_TEXT_BUDGET - _chars(tail))
        chunks = [*chunks[: max_parts - 1], [*last, *tail, note]]
    text = fallback_text(message)
    if len(chunks) <= 1:
        return [SlackMessage(text=text, blocks=chunks[0] if chunks else [])]
    return [
        SlackMessage(text=f"{text} ({index}/{len(chunks)})"[:FALLBACK_TEXT_LIMIT], blocks=chunk) for index, chunk in enumerate(chunks, 1)
    ]


def as_plain_text(message: Message) -> str:
    """The whole message as text, for a file upload (mrkdwn kept: it reads fine as text)."""
    lines: list[str] = []
    if message.title:
        lines += [message.title, ""]
    lines += [f"{label}: {value}" for label, value in message.fields]
    if message.fields:
        lines.append("")
    for section in message.sections or (message.text,):
        lines += [section, ""]
    lines += list(message.context)
    return "\n".join(lines).strip() + "\n"


def fallback_text(message: Message) -> str:
    """The notification line: never empty (Slack refuses that), never over its limit."""
    text = message.text.strip() or (message.title or "").strip() or "opsbot"
    return text if len(text) <= FALLBACK_TEXT_LIMIT else text[: FALLBACK_TEXT_LIMIT - 1] + "…"


def split_text(text: str, limit: int = SECTION_TEXT_LIMIT) -> list[str]:
    """Cut mrkdwn into pieces of at most ``limit`` characters, at line breaks where possible.

    A code fence left open by a cut is closed at the end of the piece and reopened at the start
    of the next, so each section renders on its own.
    """
    budget = limit - _FENCE_RESERVE
    pieces: list[str] = []
    current: str | None = None
    for line in text.split("\n"):
        for piece in _split_line(line, budget):
            if current is not None and len(current) + 1 + len(piece) <= budget:
                current += "\n" + piece
            else:
                if current is not None:
                    pieces.append(current)
                current = piece
    if current is not None:
        pieces.append(current)
    return _balance_fences([piece for piece in pieces if piece.strip()])


def validate(blocks: Sequence[dict[str, Any]]) -> None:
    """Raise ``SlackObjectFormationError`` unless every block parses and validates with slack_sdk."""
    for block in blocks:
        parsed = Block.parse(block)
        if parsed is None:
            raise ValueError(f"not a block: {block!r:.200}")
        parsed.validate_json()


# -- the parts of a message ----------------------------------------------------------------


@dataclass(frozen=True)
class _Parts:
    """A message's blocks by role: what must stay (head, buttons, context) and the body that may spill."""

    head: list[dict[str, Any]]
    body: list[dict[str, Any]]
    actions: list[dict[str, Any]]
    context: list[dict[str, Any]]

    @classmethod
    def of(cls, message: Message) -> _Parts:
        notes: list[str] = []
        actions = _actions_blocks(message.buttons, notes)
        sections = message.sections or (() if message.fields or message.title else (message.text,))
        return cls(
            head=_title_blocks(message.title),
            body=[*_field_blocks(message.fields), *_section_blocks(sections)],
            actions=actions,
            context=_context_blocks([*message.context, *notes]),
        )

    def all(self) -> list[dict[str, Any]]:
        return [*self.head, *self.body, *self.actions, *self.context]


def _title_blocks(title: str | None) -> list[dict[str, Any]]:
    """A header when the title is short plain text; otherwise a bold section (a header cannot mention or link)."""
    if not title or not title.strip():
        return []
    plain = _unescape(title.strip())
    if len(plain) <= HEADER_TEXT_LIMIT and not any(marker in title for marker in _MENTION_CHARS):
        return [HeaderBlock(text=PlainTextObject(text=plain, emoji=True)).to_dict()]
    return _section_blocks([f"*{title.strip()}*"])


def _section_blocks(sections: Iterable[str]) -> list[dict[str, Any]]:
    return [SectionBlock(text=MarkdownTextObject(text=piece)).to_dict() for section in sections for piece in split_text(section)]


def _field_blocks(fields: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """Fields two-by-two as Slack draws them, ten per section; a field too long for one becomes a section."""
    blocks: list[dict[str, Any]] = []
    batch: list[MarkdownTextObject] = []
    for label, value in fields:
        text = f"*{label}*\n{value or '—'}"
        if len(text) <= FIELD_TEXT_LIMIT:
            batch.append(MarkdownTextObject(text=text))
            continue
        blocks += _flush_fields(batch)
        blocks += _section_blocks([text])
    blocks += _flush_fields(batch)
    return blocks


def _flush_fields(batch: list[MarkdownTextObject]) -> list[dict[str, Any]]:
    blocks = [
        SectionBlock(fields=batch[start : start + FIELDS_PER_SECTION]).to_dict() for start in range(0, len(batch), FIELDS_PER_SECTION)
    ]
    batch.clear()
    return blocks


def _actions_blocks(buttons: Sequence[Button], notes: list[str]) -> list[dict[str, Any]]:
    elements: list[ButtonElement] = []
    seen: dict[str, int] = {}
    for button in buttons:
        if len(button.value) > BUTTON_VALUE_LIMIT:
            logger.warning(
                "button %s not drawn: its value has %d characters (Slack allows %d)", button.action, len(button.value), BUTTON_VALUE_LIMIT
            )
            notes.append(f"(The “{button.label}” button could not be drawn: its value is longer than Slack allows.)")
            continue
        occurrence = seen.get(button.action, 0)
        seen[button.action] = occurrence + 1
        elements.append(
            ButtonElement(
                text=_label(button.label),
                action_id=action_id_for(button.action, occurrence),
                value=button.value,
                style=button.style if button.style in ("primary", "danger") else None,
            )
        )
    return [
        ActionsBlock(elements=elements[start : start + BUTTONS_PER_BLOCK]).to_dict() for start in range(0, len(elements), BUTTONS_PER_BLOCK)
    ]


def _context_blocks(lines: Sequence[str]) -> list[dict[str, Any]]:
    texts = [MarkdownTextObject(text=piece) for line in lines for piece in split_text(line, CONTEXT_TEXT_LIMIT)]
    return [
        ContextBlock(elements=texts[start : start + CONTEXT_ELEMENTS_PER_BLOCK]).to_dict()
        for start in range(0, len(texts), CONTEXT_ELEMENTS_PER_BLOCK)
    ]


def _context(text: str) -> dict[str, Any]:
    return ContextBlock(elements=[MarkdownTextObject(text=text)]).to_dict()


def _label(label: str) -> str:
    plain = _unescape(label).strip() or "…"
    return plain if len(plain) <= BUTTON_LABEL_LIMIT else plain[: BUTTON_LABEL_LIMIT - 1] + "…"


# -- sizing and chunking ---------------------------------------------------------------------


def _block_chars(block: dict[str, Any]) -> int:
    """How much text a block shows (what the budget is about), ignoring ids and values."""
    total = 0
    text = block.get("text")
    if isinstance(text, dict):
        total += len(str(text.get("text", "")))
    for key in ("fields", "elements"):
        for item in block.get(key) or []:
            if isinstance(item, dict) and isinstance(item.get("text"), str):
                total += len(item["text"])
    return total


def _chars(blocks: Sequence[dict[str, Any]]) -> int:
    return sum(map(_block_chars, blocks))


def _take_within(blocks: Sequence[dict[str, Any]], max_blocks: int, max_chars: int) -> list[dict[str, Any]]:
    kept: list[dict[str, Any]] = []
    used = 0
    for block in blocks:
        size = _block_chars(block)
        if len(kept) >= max_blocks or used + size > max_chars:
            break
        kept.append(block)
        used += size
    return kept


def _chunk(blocks: Sequence[dict[str, Any]], max_blocks: int, max_chars: int) -> list[list[dict[str, Any]]]:
    chunks: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    used = 0
    for block in blocks:
        size = _block_chars(block)
        if current and (len(current) >= max_blocks or used + size > max_chars):
            chunks.append(current)
            current, used = [], 0
        current.append(block)
        used += size
    if current:
        chunks.append(current)
    return chunks


# -- text splitting --------------------------------------------------------------------------


def _split_line(line: str, limit: int) -> list[str]:
    pieces: list[str] = []
    while len(line) > limit:
        cut = _safe_cut(line, limit)
        pieces.append(line[:cut].rstrip())
        line = line[cut:].lstrip(" ")
    pieces.append(line)
    return pieces


def _safe_cut(line: str, limit: int) -> int:
    """Where to cut a line longer than ``limit``: at a space if one is near, never inside an entity or ``<…>``."""
    cut = limit
    space = line.rfind(" ", 0, limit)
    if space > limit // 2:
        cut = space
    entity = line.rfind("&", max(0, cut - 8), cut)
    if entity > 0 and ";" not in line[entity:cut]:
        cut = entity
    bracket = line.rfind("<", max(0, cut - 200), cut)
    if bracket > 0 and ">" not in line[bracket:cut]:
        cut = bracket
    return cut


def _balance_fences(pieces: list[str]) -> list[str]:
    balanced: list[str] = []
    open_fence = False
    for piece in pieces:
        text = f"{FENCE}\n{piece}" if open_fence else piece
        if text.count(FENCE) % 2 == 1:
            text += f"\n{FENCE}"
            open_fence = True
        else:
            open_fence = False
        balanced.append(text)
    return balanced


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
