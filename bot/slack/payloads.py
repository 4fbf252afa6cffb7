"""The only module that knows what Slack's payloads look like.

A slash command (a form, flattened to a dict by Bolt) becomes an ``Invocation``; a
``block_actions`` payload (on a message, or on the App Home) becomes a ``Click``; an
``app_home_opened`` event names whose home to publish. Parsing is defensive: a signed request can
still carry a shape we do not expect (a field missing, a list where a string should be,
a button from another app, a value too long to be ours). Each of those becomes a
``PayloadProblem`` with a sentence for the person who acted, never an exception that
would reach Bolt and turn into an HTTP 500 and a generic Slack error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, parse_qsl

from bot.audit.events import Actor
from bot.messages import ButtonAction, MessageRef
from bot.requests.invocation import Click, Invocation

MAX_COMMAND_CHARS = 4_000
"""Slack caps slash command text near this; anything longer is not a command a person typed."""
MAX_BUTTON_VALUE_CHARS = 2_000
"""Slack's own limit for a button value: a longer one was not drawn by opsbot."""
MAX_NAME_CHARS = 80
ACTION_ID_SUFFIX = "#"
"""``opsbot_approve#2``: blocks.py suffixes repeated action ids so they stay unique in a block."""

HOME_ACTIONS = frozenset({ButtonAction.APPROVE, ButtonAction.REJECT, ButtonAction.CANCEL})
"""The buttons the App Home draws (``bot.requests.home``); the incident buttons live only in channels."""

_SLACK_ID = re.compile(r"^[A-Z0-9]{2,32}$")
_MESSAGE_TS = re.compile(r"^\d{1,12}\.\d{1,8}$")
_VIEW_ID = re.compile(r"^V[A-Z0-9]{1,63}$")


@dataclass(frozen=True)
class SlashCommand:
    """A parsed ``/ops …`` with where to answer its person privately."""

    invocation: Invocation
    response_url: str | None


@dataclass(frozen=True)
class ButtonClick:
    """A parsed button press with where to answer its person privately."""

    click: Click
    response_url: str | None


@dataclass(frozen=True)
class PayloadProblem:
    """A payload opsbot cannot act on: what to tell the person, where, and what to log."""

    user_message: str
    detail: str
    user_id: str | None = None
    channel: str | None = None
    response_url: str | None = None


def slash_command_form(body: bytes, content_type: str | None) -> dict[str, str] | None:
    """The fields of a slash command posted over HTTP, decoded as Bolt decodes a form; None for anything else.

    Anything else is an interactivity payload (``payload=…``), an Events API delivery (JSON), or
    Slack's ``ssl_check``: those stay Bolt's to decode and dispatch. Unlike Bolt, a command whose
    text contains the word "payload" is still a command (Bolt decodes any such body as ``{}``).
    """
    if body.startswith((b"payload=", b"{")) or content_type == "application/json":
        return None
    form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    if "command" not in form or "payload" in form or "ssl_check" in form:
        return None
    return form


def parse_slash_command(body: Mapping[str, Any], *, delivery: str | None = None) -> SlashCommand | PayloadProblem:
    """A slash-command form → ``Invocation`` (``delivery``: its replay id), with Slack's HTML escaping undone."""
    user_id = field_slack_id(body.get("user_id"))
    channel = field_slack_id(body.get("channel_id"))
    response_url = field_url(body.get("response_url"))
    text = body.get("text", "")
    if user_id is None or channel is None:
        return PayloadProblem(
            "Slack sent this command without a user or channel, so opsbot cannot act on it. Try again from a channel.",
            detail=f"slash command without a usable user_id/channel_id: {body.get('user_id')!r:.40}/{body.get('channel_id')!r:.40}",
            user_id=user_id,
            channel=channel,
            response_url=response_url,
        )
    if not isinstance(text, str):
        return PayloadProblem(
            "opsbot could not read that command's text.", detail=f"text is {type(text).__name__}", user_id=user_id, channel=channel
        )
    if len(text) > MAX_COMMAND_CHARS:
        return PayloadProblem(
            f"That command is {len(text):,} characters long; opsbot accepts up to {MAX_COMMAND_CHARS:,}.",
            detail=f"text of {len(text)} characters",
            user_id=user_id,
            channel=channel,
            response_url=response_url,
        )
    actor = Actor(user_id=user_id, name=_name(body.get("user_name"), user_id))
    return SlashCommand(Invocation(actor=actor, channel=channel, text=unescape(text).strip(), delivery=delivery), response_url)


def parse_block_action(body: Mapping[str, Any]) -> ButtonClick | PayloadProblem:
    """A ``block_actions`` payload → ``Click`` on one of opsbot's buttons."""
    user = field_mapping(body.get("user"))
    user_id = field_slack_id(user.get("id"))
    container = field_mapping(body.get("container"))
    channel = field_slack_id(field_mapping(body.get("channel")).get("id")) or field_slack_id(container.get("channel_id"))
    response_url = field_url(body.get("response_url"))
    home_view = home_view_of(body)

    def problem(message: str, detail: str) -> PayloadProblem:
        return PayloadProblem(message, detail=detail, user_id=user_id, channel=channel, response_url=response_url)

    if user_id is None:
        return problem("Slack sent this click without saying who clicked, so opsbot ignored it.", "block_actions without user.id")
    if channel is None and home_view is None:
        return problem(
            "opsbot buttons only work in channels and on its App Home; this one was clicked elsewhere.", "block_actions without a channel"
        )
    action = first_action(body)
    if action is None:
        return problem("opsbot could not read that click; try the button again.", "block_actions without a usable actions[0]")
    action_id = action.get("action_id")
    button = _button_action(action_id)
    if button is None:
        return problem(
            "That button does not belong to opsbot (or to this version of it); nothing was done.", f"unknown action_id {action_id!r:.80}"
        )
    value = action.get("value", "")
    if not isinstance(value, str) or len(value) > MAX_BUTTON_VALUE_CHARS:
        size = len(value) if isinstance(value, str) else type(value).__name__
        return problem("That button's value is not one opsbot draws; nothing was done.", f"button value of {size}")
    actor = Actor(user_id=user_id, name=_name(user.get("username") or user.get("name"), user_id))
    if channel is None:  # on the App Home: no channel, no message, no response_url; the view says where
        if button not in HOME_ACTIONS:
            return problem("That button is not one opsbot draws on its App Home; nothing was done.", f"{button} clicked on a home view")
        return ButtonClick(Click(actor=actor, channel="", action=button, value=value, home_view=home_view), None)
    click = Click(actor=actor, channel=channel, action=button, value=value, message=_message_ref(body, container, channel))
    return ButtonClick(click, response_url)


def home_view_of(body: Mapping[str, Any]) -> str | None:
    """The App Home view a ``block_actions`` payload came from (``view.type == "home"``), if it did."""
    container = field_mapping(body.get("container"))
    view = field_mapping(body.get("view"))
    if container.get("type") != "view" or view.get("type") != "home":
        return None
    view_id = view.get("id")
    return view_id if isinstance(view_id, str) and _VIEW_ID.match(view_id) and container.get("view_id") in (None, view_id) else None


def home_opened_by(body: Mapping[str, Any]) -> str | None:
    """Who opened the *Home* tab in an ``app_home_opened`` event (None for the Messages tab, or if unreadable)."""
    event = field_mapping(body.get("event"))
    if event.get("type") != "app_home_opened" or event.get("tab") != "home":
        return None
    return field_slack_id(event.get("user"))


def undecodable_click(body: bytes) -> PayloadProblem | None:
    """Who to tell about a signed click Bolt could not decode (a field of the wrong type), if anyone.

    Bolt reads ``team``, ``enterprise``, ``authorizations``… while building its context and fails
    on a wrong type before any listener runs; this reads the same body defensively so the person
    who clicked still hears that nothing was done. None when the body is no click at all.
    """
    payload = _form_payload(body)
    if payload is None or not is_block_actions(payload):
        return None
    parsed = parse_block_action(payload)
    if isinstance(parsed, PayloadProblem):
        return parsed
    return PayloadProblem(
        "opsbot could not read that click, so nothing was done; try the button again.",
        detail="a block_actions payload Bolt could not decode",
        user_id=parsed.click.actor.user_id,
        channel=parsed.click.channel or None,
        response_url=parsed.response_url,
    )


def foreign_workspace(body: Mapping[str, Any], team_id: str) -> PayloadProblem:
    """A command or click from a workspace this bot's token does not belong to: refuse, and say so."""
    user = field_mapping(body.get("user"))
    user_id = field_slack_id(body.get("user_id")) or field_slack_id(user.get("id"))
    container = field_mapping(body.get("container"))
    channel = (
        field_slack_id(body.get("channel_id"))
        or field_slack_id(field_mapping(body.get("channel")).get("id"))
        or field_slack_id(container.get("channel_id"))
    )
    return PayloadProblem(
        "opsbot serves one Slack workspace and this came from another, so nothing was done.",
        detail=f"a request from workspace {team_id!r:.40}",
        user_id=user_id,
        channel=channel,
        response_url=field_url(body.get("response_url")),
    )


def user_workspace(body: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The workspace (and org) of the *person* who acted, which in a Slack Connect channel is not the request's team.

    ``block_actions`` carry it as ``user.team_id`` (and ``enterprise.id`` on Enterprise Grid); a slash
    command names the invoking user's workspace in ``team_id`` (and ``enterprise_id``).
    """
    user = field_mapping(body.get("user"))
    team = field_slack_id(user.get("team_id")) if user else field_slack_id(body.get("team_id"))
    enterprise = field_slack_id(field_mapping(body.get("enterprise")).get("id")) or field_slack_id(body.get("enterprise_id"))
    return team, enterprise


def foreign_user(body: Mapping[str, Any], team_id: str) -> PayloadProblem:
    """A person from another organisation (Slack Connect) in a shared channel: refuse, and say so."""
    problem = foreign_workspace(body, team_id)
    return PayloadProblem(
        "opsbot acts only for people of this workspace, and your account belongs to another organisation's "
        f"workspace ({team_id}), so nothing was done. Ask someone from this workspace.",
        detail=f"a person from workspace {team_id!r:.40}",
        user_id=problem.user_id,
        channel=problem.channel,
        response_url=problem.response_url,
    )


def changed_user_group(body: Mapping[str, Any]) -> str | None:
    """The ``S…`` id a ``subteam_members_changed`` / ``subteam_updated`` event is about (None if unreadable)."""
    event = field_mapping(body.get("event"))
    return field_slack_id(event.get("subteam_id")) or field_slack_id(field_mapping(event.get("subteam")).get("id"))


def first_action(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """``actions[0]`` if it is an object with a string ``action_id`` (Bolt's matchers index it blindly)."""
    actions = body.get("actions")
    if not isinstance(actions, list) or not actions or not isinstance(actions[0], Mapping):
        return None
    action: Mapping[str, Any] = actions[0]
    return action if isinstance(action.get("action_id"), str) else None


def is_block_actions(body: Mapping[str, Any]) -> bool:
    return body.get("type") == "block_actions"


def is_slash_command(body: Mapping[str, Any]) -> bool:
    return isinstance(body.get("command"), str)


def unescape(text: str) -> str:
    """Undo Slack's escaping of ``& < >`` in command text; ``&amp;`` last, so ``&amp;lt;`` stays ``&lt;``."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def action_id_for(action: ButtonAction, occurrence: int) -> str:
    """The action id of the ``occurrence``-th button with ``action`` in one block (0 = plain)."""
    return str(action) if occurrence == 0 else f"{action}{ACTION_ID_SUFFIX}{occurrence}"


def _button_action(action_id: object) -> ButtonAction | None:
    if not isinstance(action_id, str) or len(action_id) > 255:
        return None
    base = action_id.split(ACTION_ID_SUFFIX, 1)[0]
    try:
        return ButtonAction(base)
    except ValueError:
        return None


def _message_ref(body: Mapping[str, Any], container: Mapping[str, Any], channel: str) -> MessageRef | None:
    """The clicked message, unless it was ephemeral (those cannot be updated)."""
    if container.get("is_ephemeral") is True:
        return None
    ts = container.get("message_ts") or field_mapping(body.get("message")).get("ts")
    if not isinstance(ts, str) or not _MESSAGE_TS.match(ts):
        return None
    return MessageRef(channel=channel, ts=ts)


def _form_payload(body: bytes) -> Mapping[str, Any] | None:
    """The JSON object in an interactivity form's ``payload=`` field, or None for anything else."""
    try:
        values = parse_qs(body.decode("utf-8"), strict_parsing=False).get("payload") or []
        payload = json.loads(values[0]) if len(values) == 1 else None
    except (ValueError, RecursionError):  # not UTF-8, not JSON, nested too deep
        return None
    return payload if isinstance(payload, Mapping) else None


def field_mapping(value: object) -> Mapping[str, Any]:
    """A payload field read as an object ({} when Slack sent something else); the field readers are shared by every payload parser here."""
    return value if isinstance(value, Mapping) else {}


def field_slack_id(value: object) -> str | None:
    return value if isinstance(value, str) and _SLACK_ID.match(value) else None


def field_url(value: object) -> str | None:
    if isinstance(value, str) and value.startswith(("https://", "http://")) and len(value) <= 2_000:
        return value
    return None


def _name(value: object, fallback: str) -> str:
    if isinstance(value, str) and value.strip():
        return value.strip()[:MAX_NAME_CHARS]
    return fallback
