"""Block Kit rendering: every limit handled by splitting or by an explicit overflow, never a silent cut."""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import Block

from bot.messages import Button, ButtonAction, Message
from bot.slack.blocks import (
    MAX_BLOCKS,
    SECTION_TEXT_LIMIT,
    as_plain_text,
    render,
    render_parts,
    split_text,
    validate,
)


def texts(blocks: list[dict[str, Any]]) -> str:
    """Everything a person would read in the blocks, in order."""
    out: list[str] = []
    for block in blocks:
        if isinstance(block.get("text"), dict):
            out.append(block["text"]["text"])
        for item in block.get("fields", []) + block.get("elements", []):
            if isinstance(item.get("text"), str):
                out.append(item["text"])
    return "\n".join(out)


def assert_valid(blocks: list[dict[str, Any]]) -> None:
    assert len(blocks) <= MAX_BLOCKS
    validate(blocks)
    for block in blocks:
        parsed = Block.parse(block)
        assert parsed is not None
        parsed.validate_json()


def test_request_message_becomes_header_fields_sections_buttons_context() -> None:
    message = Message(
        text="#1 deploy",
        title="🕒 #1 deploy checkout 1.4.2 in production",
        sections=("*Plan:*\n• image `1.4.1` → `1.4.2`",),
        fields=(("Requested by", "<@U0REQ>"), ("State", "waiting")),
        buttons=(
            Button(ButtonAction.APPROVE, "Approve", "1:a:b", "primary"),
            Button(ButtonAction.REJECT, "Reject", "1:a:b", "danger"),
        ),
        context=("request #1",),
    )

    rendered = render(message)

    assert [block["type"] for block in rendered.blocks] == ["header", "section", "section", "actions", "context"]
    assert rendered.overflow is None
    assert [element["action_id"] for element in rendered.blocks[3]["elements"]] == ["opsbot_approve", "opsbot_reject"]
    assert_valid(rendered.blocks)


def test_section_over_3000_characters_is_split_into_sections_without_losing_a_line() -> None:
    lines = [f"line {index:03d} " + "y" * 80 for index in range(80)]
    rendered = render(Message.plain("\n".join(lines)))

    sections = [block for block in rendered.blocks if block["type"] == "section"]
    assert len(sections) >= 3
    assert all(len(block["text"]["text"]) <= SECTION_TEXT_LIMIT for block in sections)
    assert texts(sections).split("\n") == lines
    assert_valid(rendered.blocks)


def test_one_huge_line_is_cut_at_spaces_and_never_inside_an_entity_or_mention() -> None:
    words = " ".join(["&amp;", "<@U0REQ>", "word"] * 800)
    pieces = split_text(words)

    assert all(len(piece) <= SECTION_TEXT_LIMIT for piece in pieces)
    assert " ".join(pieces).split() == words.split()
    for piece in pieces:
        assert piece.count("<") == piece.count(">")
        assert not piece.endswith("&") and not piece.endswith("&amp")


def test_a_code_block_split_across_sections_is_closed_and_reopened() -> None:
    body = "```\n" + "\n".join("x" * 99 for _ in range(70)) + "\n```"
    pieces = split_text(body)

    assert len(pieces) > 1
    assert all(piece.count("```") % 2 == 0 for piece in pieces)
    assert pieces[1].startswith("```\n")


def test_too_many_blocks_keeps_head_buttons_and_context_and_reports_overflow() -> None:
    sections = tuple(f"section {index}" for index in range(80))
    message = Message(
        text="long",
        title="Long",
        sections=sections,
        buttons=(Button(ButtonAction.CANCEL, "Stop", "1:a:b", "danger"),),
        context=("request #1",),
    )

    rendered = render(message)

    assert len(rendered.blocks) <= MAX_BLOCKS
    assert rendered.blocks[0]["type"] == "header"
    assert any(block["type"] == "actions" for block in rendered.blocks)
    assert "attached as a file" in texts(rendered.blocks)
    assert rendered.overflow is not None and all(section in rendered.overflow for section in sections)
    assert_valid(rendered.blocks)


def test_huge_text_under_the_block_count_still_overflows_to_a_file() -> None:
    rendered = render(Message.plain("z" * 40_000))

    assert rendered.overflow is not None and "z" * 40_000 in rendered.overflow
    assert sum(len(block.get("text", {}).get("text", "")) for block in rendered.blocks) < 15_000
    assert_valid(rendered.blocks)


def test_private_reply_too_long_for_one_message_is_sent_in_parts_with_everything() -> None:
    lines = [f"row {index:05d} " + "q" * 90 for index in range(400)]
    parts = render_parts(Message(text="rows", title="Rows", sections=("\n".join(lines),), context=("end",)))

    assert len(parts) > 1
    shown = "\n".join(texts(part.blocks) for part in parts)
    assert all(line in shown for line in lines)
    assert texts(parts[-1].blocks).endswith("end")
    for part in parts:
        assert_valid(part.blocks)


def test_private_reply_past_the_part_limit_says_how_much_was_left_out() -> None:
    parts = render_parts(Message.plain("w" * 200_000), max_parts=3)

    assert len(parts) == 3
    assert "more characters were not shown" in texts(parts[-1].blocks)


def test_long_title_mentions_long_fields_and_many_buttons_stay_valid() -> None:
    message = Message(
        text="t",
        title="A title that mentions <@U0REQ> " + "long " * 40,
        fields=tuple((f"field {index}", "v" * (2_500 if index == 3 else 10)) for index in range(14)),
        buttons=tuple(Button(ButtonAction.INCIDENT_ACK, f"Ack {index}", f"svc{index}") for index in range(30)),
        context=tuple(f"ctx {index}" for index in range(12)),
    )

    rendered = render(message)

    assert rendered.blocks[0]["type"] == "section", "a header cannot mention; the title becomes bold text"
    action_ids = [element["action_id"] for block in rendered.blocks if block["type"] == "actions" for element in block["elements"]]
    assert len(action_ids) == 30 and len(set(action_ids)) == 30
    assert "v" * 2_500 in texts(rendered.blocks).replace("\n", "")
    assert_valid(rendered.blocks)


def test_a_button_value_slack_would_refuse_is_left_out_and_said_so() -> None:
    rendered = render(Message(text="x", sections=("x",), buttons=(Button(ButtonAction.APPROVE, "Approve", "v" * 2_001),)))

    assert not any(block["type"] == "actions" for block in rendered.blocks)
    assert "could not be drawn" in texts(rendered.blocks)
    assert_valid(rendered.blocks)


def test_plain_text_of_a_message_keeps_title_fields_sections_and_context() -> None:
    text = as_plain_text(Message(text="x", title="T", sections=("S1", "S2"), fields=(("F", "v"),), context=("C",)))

    assert text.split() == ["T", "F:", "v", "S1", "S2", "C"]
