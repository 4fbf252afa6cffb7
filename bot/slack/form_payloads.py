"""Slack's payloads for forms and shortcuts, read defensively: ``view_submission``, ``block_suggestion``, shortcuts, form changes.

Like ``bot.slack.payloads`` for commands and clicks: a payload of a shape opsbot does not
expect becomes ``None`` (or a ``PayloadProblem``), never an exception in a listener.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.audit.events import Actor
from bot.messages import MessageRef
from bot.slack.modals import Submission, read_submission
from bot.slack.payloads import field_mapping, field_slack_id, field_url

_MESSAGE_TS = re.compile(r"^\d{1,12}\.\d{1,8}$")
_REQUEST_TITLE = re.compile(r"^\S*\s*#(\d{1,10}) ")
"""opsbot's request messages start ``#12 deploy …`` (``bot.requests.views.request_title``), after a state icon in blocks."""
MAX_TRIGGER_CHARS = 200
MAX_SUGGESTION_QUERY_CHARS = 200


@dataclass(frozen=True)
class FormSubmission:
    """A submitted runbook form: who, and what they answered."""

    actor: Actor
    submission: Submission
    response_url: str | None


@dataclass(frozen=True)
class FormChange:
    """A field of an open form changed (service, env) or the picker chose a runbook: the view to redraw."""

    actor: Actor
    view_id: str
    view_hash: str | None
    submission: Submission | None
    picked: str | None


@dataclass(frozen=True)
class Shortcut:
    """A global (``message`` None) or message shortcut."""

    callback_id: str
    actor: Actor
    trigger_id: str
    message: MessageRef | None = None
    request_id: int | None = None
    response_url: str | None = None


def actor_of(body: Mapping[str, Any]) -> Actor | None:
    user = field_mapping(body.get("user"))
    user_id = field_slack_id(user.get("id"))
    if user_id is None:
        return None
    name = user.get("username") or user.get("name")
    return Actor(user_id=user_id, name=name.strip()[:80] if isinstance(name, str) and name.strip() else user_id)


def form_submission(body: Mapping[str, Any]) -> FormSubmission | None:
    actor = actor_of(body)
    submission = read_submission(field_mapping(body.get("view")))
    if actor is None or submission is None:
        return None
    urls = body.get("response_urls")
    first = urls[0] if isinstance(urls, list) and urls and isinstance(urls[0], Mapping) else {}
    return FormSubmission(actor, submission, field_url(first.get("response_url")))


def form_change(body: Mapping[str, Any], picked: str | None) -> FormChange | None:
    """A ``block_actions`` payload from inside one of opsbot's modals."""
    actor = actor_of(body)
    view = field_mapping(body.get("view"))
    view_id = view.get("id")
    if actor is None or not isinstance(view_id, str) or not view_id:
        return None
    view_hash = view.get("hash")
    return FormChange(actor, view_id, view_hash if isinstance(view_hash, str) else None, read_submission(view), picked)


def suggestion_query(body: Mapping[str, Any]) -> tuple[str, Submission] | None:
    """What was typed in an ``external_select``, and the form it is in."""
    typed = body.get("value", "")
    submission = read_submission(field_mapping(body.get("view")))
    if not isinstance(typed, str) or submission is None:
        return None
    return typed[:MAX_SUGGESTION_QUERY_CHARS], submission


def shortcut(body: Mapping[str, Any]) -> Shortcut | None:
    actor = actor_of(body)
    trigger = body.get("trigger_id")
    callback = body.get("callback_id")
    if actor is None or not isinstance(trigger, str) or not trigger or len(trigger) > MAX_TRIGGER_CHARS or not isinstance(callback, str):
        return None
    if body.get("type") != "message_action":
        return Shortcut(callback, actor, trigger)
    channel = field_slack_id(field_mapping(body.get("channel")).get("id"))
    message = field_mapping(body.get("message"))
    ts = message.get("ts") or body.get("message_ts")
    if channel is None or not isinstance(ts, str) or not _MESSAGE_TS.match(ts):
        return None
    return Shortcut(callback, actor, trigger, MessageRef(channel, ts), _request_number(message), field_url(body.get("response_url")))


def _request_number(message: Mapping[str, Any]) -> int | None:
    """The request number a message's text (or its first block) starts with, if any; the core checks it is really that request's."""
    texts = [message.get("text")]
    blocks = message.get("blocks")
    if isinstance(blocks, list) and blocks and isinstance(blocks[0], Mapping):
        texts.append(field_mapping(blocks[0].get("text")).get("text"))
    for text in texts:
        match = _REQUEST_TITLE.match(text) if isinstance(text, str) else None
        if match is not None:
            return int(match.group(1))
    return None
