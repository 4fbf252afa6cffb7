"""A ``HomeView`` → the Block Kit ``home`` view that ``views.publish`` takes.

Slack refuses a whole home view past 100 blocks; ``bot.requests.home`` bounds every list so a
home stays well under that, and the drawing still checks: should a home ever need more, the
last items give way to one "and N more" line instead of Slack refusing the lot.
"""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import ActionsBlock, ButtonElement, ContextBlock, DividerBlock, HeaderBlock, MarkdownTextObject, SectionBlock
from slack_sdk.models.blocks import PlainTextObject as Plain

from bot.messages import Button
from bot.requests.home import HomeItem, HomeSection, HomeView
from bot.slack.blocks import split_text
from bot.slack.payloads import action_id_for

MAX_HOME_BLOCKS = 100
"""Slack's limit for a home tab view."""
HOME_TITLE = "opsbot"


def home_view(view: HomeView) -> dict[str, Any]:
    """The ``view`` argument of ``views.publish``."""
    return {"type": "home", "callback_id": "opsbot_home", "blocks": home_blocks(view)}


def home_blocks(view: HomeView) -> list[dict[str, Any]]:
    head = [HeaderBlock(text=Plain(text=HOME_TITLE, emoji=True)).to_dict()]
    if view.notice:
        head += [_section(piece, f"notice-{number}") for number, piece in enumerate(split_text(f"💬 {view.notice}"))]
    foot = [DividerBlock().to_dict(), _context(view.footer, "footer")]
    keep = [len(section.items) for section in view.sections]
    drawn = [_section_blocks(section, index, keep[index]) for index, section in enumerate(view.sections)]
    while sum(map(len, drawn)) > MAX_HOME_BLOCKS - len(head) - len(foot) and any(keep):
        # The longest section gives up its last item, which its "and N more" line then counts.
        longest = max((index for index in range(len(keep)) if keep[index]), key=lambda index: len(drawn[index]))
        keep[longest] -= 1
        drawn[longest] = _section_blocks(view.sections[longest], longest, keep[longest])
    return [*head, *(block for blocks in drawn for block in blocks), *foot]


def _section_blocks(section: HomeSection, index: int, keep: int) -> list[dict[str, Any]]:
    items = section.items[:keep]
    more = section.more + len(section.items) - len(items)
    blocks: list[dict[str, Any]] = [DividerBlock().to_dict(), _section(f"*{section.title}*", f"s{index}-title")]
    if not section.items and not section.more:
        blocks.append(_context(section.empty, f"s{index}-empty"))
    for item in items:
        blocks += _item_blocks(item)
    if more:
        hint = f" ({section.more_hint})" if section.more_hint else ""
        blocks.append(_context(f"…and {more} more{hint}", f"s{index}-more"))
    return blocks


def _item_blocks(item: HomeItem) -> list[dict[str, Any]]:
    pieces = split_text(item.text)
    blocks = [_section(piece, f"item-{item.key}-{number}") for number, piece in enumerate(pieces)]
    if item.buttons:
        blocks.append(ActionsBlock(block_id=f"item-{item.key}-actions", elements=_buttons(item.buttons)).to_dict())
    return blocks


def _buttons(buttons: tuple[Button, ...]) -> list[ButtonElement]:
    seen: dict[str, int] = {}
    elements = []
    for button in buttons:
        occurrence = seen.get(button.action, 0)
        seen[button.action] = occurrence + 1
        elements.append(
            ButtonElement(
                text=button.label,
                action_id=action_id_for(button.action, occurrence),
                value=button.value,
                style=button.style if button.style in ("primary", "danger") else None,
            )
        )
    return elements


def _section(text: str, block_id: str) -> dict[str, Any]:
    return SectionBlock(block_id=block_id, text=MarkdownTextObject(text=text)).to_dict()


def _context(text: str, block_id: str) -> dict[str, Any]:
    return ContextBlock(block_id=block_id, elements=[MarkdownTextObject(text=text)]).to_dict()
