"""Slack payloads → Invocation / Click, and every malformed shape → a sentence, never an exception."""

from __future__ import annotations

from typing import Any

import pytest

from bot.messages import ButtonAction, MessageRef
from bot.slack.payloads import (
    ButtonClick,
    PayloadProblem,
    SlashCommand,
    home_opened_by,
    parse_block_action,
    parse_slash_command,
    slash_command_form,
    unescape,
)

COMMAND = {
    "user_id": "U0REQ",
    "user_name": "requester",
    "channel_id": "C0OPS",
    "text": "deploy checkout 1.4.2 &lt;beta&gt; &amp;&amp; more",
    "response_url": "https://hooks.slack.com/commands/T1/2/3",
}


@pytest.mark.parametrize(
    ("body", "content_type", "form"),
    [
        (b"command=%2Fops&text=help&team_id=T1", None, {"command": "/ops", "text": "help", "team_id": "T1"}),
        (b"command=%2Fops&text=deploy+payload-api", None, {"command": "/ops", "text": "deploy payload-api"}),
        (b"command=%2Fops&text=", "application/x-www-form-urlencoded", {"command": "/ops", "text": ""}),
        (b"payload=%7B%22type%22%3A%22block_actions%22%7D", None, None),
        (b'{"type": "url_verification", "challenge": "x"}', "application/json", None),
        (b"command=%2Fops&text=help", "application/json", None),
        (b"ssl_check=1&command=%2Fops&token=x", None, None),
        (b"text=help&payload=x", None, None),
        (b"text=help&user_id=U1", None, None),
        (b"", None, None),
    ],
)
def test_only_a_slash_command_posted_as_a_form_is_decoded_as_one(body: bytes, content_type: str | None, form: object) -> None:
    # Everything else (clicks, events, Slack's ssl_check) stays Bolt's to decode and answer.
    assert slash_command_form(body, content_type) == form


def test_the_replay_id_is_part_of_the_invocation() -> None:
    parsed = parse_slash_command(COMMAND, delivery="abc")

    assert isinstance(parsed, SlashCommand) and parsed.invocation.delivery == "abc"


def click_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": "U0A00", "username": "approver0"},
        "channel": {"id": "C0OPS"},
        "container": {"type": "message", "message_ts": "1732550000.000100", "channel_id": "C0OPS"},
        "response_url": "https://hooks.slack.com/actions/T1/2/3",
        "actions": [{"type": "button", "action_id": "opsbot_approve", "value": "1:abc:def"}],
    }
    body.update(overrides)
    return body


def test_slash_command_becomes_an_invocation_with_slacks_escaping_undone() -> None:
    parsed = parse_slash_command(COMMAND)

    assert isinstance(parsed, SlashCommand)
    assert parsed.invocation.text == "deploy checkout 1.4.2 <beta> && more"
    assert (parsed.invocation.actor.user_id, parsed.invocation.actor.name, parsed.invocation.channel) == ("U0REQ", "requester", "C0OPS")
    assert parsed.response_url == COMMAND["response_url"]


def test_unescape_turns_amp_lt_back_into_the_literal_text_once() -> None:
    assert unescape("&amp;lt;") == "&lt;"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"user_id": None}, "without a user or channel"),
        ({"channel_id": ["C0OPS"]}, "without a user or channel"),
        ({"text": 42}, "could not read"),
        ({"text": "x" * 5_000}, "accepts up to"),
    ],
)
def test_unusable_slash_commands_become_a_sentence(change: dict[str, Any], expected: str) -> None:
    parsed = parse_slash_command({**COMMAND, **change})

    assert isinstance(parsed, PayloadProblem)
    assert expected in parsed.user_message


def test_user_name_missing_falls_back_to_the_user_id() -> None:
    parsed = parse_slash_command({key: value for key, value in COMMAND.items() if key != "user_name"})

    assert isinstance(parsed, SlashCommand)
    assert parsed.invocation.actor.name == "U0REQ"


def test_block_action_becomes_a_click_on_the_message() -> None:
    parsed = parse_block_action(click_body())

    assert isinstance(parsed, ButtonClick)
    assert parsed.click.action is ButtonAction.APPROVE
    assert parsed.click.value == "1:abc:def"
    assert parsed.click.message == MessageRef("C0OPS", "1732550000.000100")
    assert parsed.click.actor.name == "approver0"


def test_suffixed_action_ids_route_to_their_button_action() -> None:
    parsed = parse_block_action(click_body(actions=[{"action_id": "opsbot_incident_ack#3", "value": "svc"}]))

    assert isinstance(parsed, ButtonClick)
    assert parsed.click.action is ButtonAction.INCIDENT_ACK


def test_a_click_on_an_ephemeral_message_has_no_message_to_update() -> None:
    parsed = parse_block_action(click_body(container={"type": "message", "message_ts": "1.2", "is_ephemeral": True, "channel_id": "C0OPS"}))

    assert isinstance(parsed, ButtonClick)
    assert parsed.click.message is None


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"user": "U0A00"}, "without saying who clicked"),
        ({"channel": None, "container": {}}, "only work in channels"),
        ({"actions": []}, "could not read that click"),
        ({"actions": ["opsbot_approve"]}, "could not read that click"),
        ({"actions": [{"action_id": 7}]}, "could not read that click"),
        ({"actions": [{"action_id": "other_app_button", "value": "x"}]}, "does not belong to opsbot"),
        ({"actions": [{"action_id": "opsbot_approve", "value": "v" * 2_001}]}, "not one opsbot draws"),
        ({"actions": [{"action_id": "opsbot_approve", "value": {"id": 1}}]}, "not one opsbot draws"),
    ],
)
def test_unusable_clicks_become_a_sentence_for_the_clicker(change: dict[str, Any], expected: str) -> None:
    parsed = parse_block_action(click_body(**change))

    assert isinstance(parsed, PayloadProblem)
    assert expected in parsed.user_message


# -- the App Home --------------------------------------------------------------------------------


def home_click_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": "U0A00", "username": "approver0", "team_id": "T0FAKE"},
        "container": {"type": "view", "view_id": "V0000000001"},
        "view": {"id": "V0000000001", "type": "home", "blocks": []},
        "actions": [{"type": "button", "action_id": "opsbot_approve", "value": "1:abc:def"}],
    }
    body.update(overrides)
    return body


def test_a_click_on_the_app_home_names_the_view_and_no_channel() -> None:
    parsed = parse_block_action(home_click_body())

    assert isinstance(parsed, ButtonClick)
    assert parsed.click.home_view == "V0000000001"
    assert (parsed.click.channel, parsed.click.message, parsed.response_url) == ("", None, None)
    assert parsed.click.action == ButtonAction.APPROVE and parsed.click.value == "1:abc:def"


@pytest.mark.parametrize(
    "overrides",
    [
        {"view": {"id": "V0000000001", "type": "modal"}},
        {"view": {"id": "not a view id", "type": "home"}},
        {"container": {"type": "view", "view_id": "V0000000002"}},
        {"container": {"type": "message"}},
    ],
)
def test_a_click_from_no_channel_and_no_home_view_is_refused_with_a_sentence(overrides: dict[str, Any]) -> None:
    parsed = parse_block_action(home_click_body(**overrides))

    assert isinstance(parsed, PayloadProblem)
    assert "channels and on its App Home" in parsed.user_message


def test_app_home_opened_names_who_opened_the_home_tab_only() -> None:
    event = {"type": "app_home_opened", "user": "U0A00", "channel": "D0A00", "tab": "home"}

    assert home_opened_by({"type": "event_callback", "event": event}) == "U0A00"
    assert home_opened_by({"type": "event_callback", "event": {**event, "tab": "messages"}}) is None
    assert home_opened_by({"type": "event_callback", "event": {**event, "user": ["U0A00"]}}) is None
