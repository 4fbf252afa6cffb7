"""Block Kit for forms: the runbook picker, a runbook's form, a refusal, and reading a submitted form back.

The one place that knows how a ``RunbookForm`` looks in Slack. Action ids start with
``opsbot_form`` (so a listener can tell a form's payloads from message buttons) and name the
field (``opsbot_form:version``); block ids may change between redraws (an env block carries its
service, so Slack drops a stale selection when the service changes), so answers are read back by
action id. Limits from Slack's Block Kit reference: modal title 24 characters, option text 75,
option value 150, 100 options per select, 100 blocks per view.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.requests.forms import CHANNEL_FIELD, FormField, FormState, RunbookForm, RunbookPicker

FORM_CALLBACK = "opsbot_form"
PICKER_CALLBACK = "opsbot_form_picker"
NOTICE_CALLBACK = "opsbot_form_notice"
ACTION_PREFIX = "opsbot_form"
PICK_ACTION = "opsbot_form_pick"
FIELD_ACTION = ACTION_PREFIX + ":"
MAX_TITLE_CHARS = 24
MAX_OPTION_TEXT_CHARS = 75
MAX_OPTION_VALUE_CHARS = 150
MAX_OPTIONS = 100
MAX_LABEL_CHARS = 2_000
MAX_ERROR_CHARS = 2_000


@dataclass(frozen=True)
class Submission:
    """A submitted form: its state, the answers by field name, the chosen channel, and each field's block id."""

    state: FormState
    answers: dict[str, str]
    channel: str | None
    block_ids: dict[str, str]


def picker_view(picker: RunbookPicker) -> dict[str, Any]:
    """A modal with one select of runbooks; choosing one redraws the modal as that runbook's form."""
    options = [_option(choice.name, description=choice.description) for choice in picker.runbooks[:MAX_OPTIONS]]
    return {
        "type": "modal",
        "callback_id": PICKER_CALLBACK,
        "title": _plain("Run a runbook"),
        "close": _plain("Cancel"),
        "private_metadata": FormState(runbook="", channel=picker.channel).encode(),
        "blocks": [
            {
                "type": "section",
                "block_id": "runbook",
                "text": {"type": "mrkdwn", "text": "*Which runbook?* Only those the policy lets you run are listed."},
                "accessory": {
                    "type": "static_select",
                    "action_id": PICK_ACTION,
                    "placeholder": _plain("Choose a runbook"),
                    "options": options,
                },
            }
        ],
    }


def form_view(form: RunbookForm) -> dict[str, Any]:
    """The runbook's form: a field per parameter, then the channel the request is posted in."""
    service = _initial_of(form, "service")
    blocks: list[dict[str, Any]] = [
        {"type": "section", "block_id": "about", "text": {"type": "mrkdwn", "text": _clip(form.description, 3_000)}}
    ]
    for field in form.fields:
        blocks.append(_field_block(field, service))
    blocks.append(_channel_block(form.channel))
    return {
        "type": "modal",
        "callback_id": FORM_CALLBACK,
        "title": _plain(_clip(f"Run {form.runbook}", MAX_TITLE_CHARS)),
        "submit": _plain("Request"),
        "close": _plain("Cancel"),
        "private_metadata": FormState(runbook=form.runbook, channel=form.channel, versions=form.versions).encode(),
        "blocks": blocks,
    }


def notice_view(text: str) -> dict[str, Any]:
    """A modal that only says something: a refusal where no channel reply is possible (a global shortcut)."""
    return {
        "type": "modal",
        "callback_id": NOTICE_CALLBACK,
        "title": _plain("opsbot"),
        "close": _plain("Close"),
        "blocks": [{"type": "section", "block_id": "notice", "text": {"type": "mrkdwn", "text": _clip(text, 3_000)}}],
    }


def read_submission(view: Mapping[str, Any]) -> Submission | None:
    """A submitted (or changed) form's answers, by field name; None when the view is not one opsbot drew."""
    state = FormState.decode(view.get("private_metadata"))
    if state is None:
        return None
    answers: dict[str, str] = {}
    block_ids: dict[str, str] = {}
    channel: str | None = None
    values = _mapping(_mapping(view.get("state")).get("values"))
    for block_id, actions in values.items():
        for action_id, element in _mapping(actions).items():
            name = field_name(action_id)
            if name is None or not isinstance(element, Mapping):
                continue
            block_ids[name] = str(block_id)
            if name == CHANNEL_FIELD:
                selected = element.get("selected_conversation")
                channel = selected if isinstance(selected, str) and selected else None
            else:
                answers[name] = _element_value(element)
    _add_drawn_values(view, answers, block_ids)
    return Submission(state=state, answers=answers, channel=channel or state.channel, block_ids=block_ids)


def _add_drawn_values(view: Mapping[str, Any], answers: dict[str, str], block_ids: dict[str, str]) -> None:
    """Fields missing from ``state.values`` keep the value the form was drawn with (its ``initial_*``).

    Slack reports every input, untouched ones with their initial value; reading the drawn
    value too means a field left as drawn is never taken for an empty one.
    """
    blocks = view.get("blocks")
    for block in blocks if isinstance(blocks, list) else []:
        element = _mapping(_mapping(block).get("element"))
        name = field_name(element.get("action_id"))
        if name is None or name in block_ids:
            continue
        block_ids[name] = str(_mapping(block).get("block_id") or name)
        if name == CHANNEL_FIELD:
            continue
        initial = _mapping(element.get("initial_option")).get("value", element.get("initial_value"))
        if isinstance(initial, str):
            answers[name] = initial


def suggestion_options(state: FormState, typed: str, pattern: str | None = None) -> list[dict[str, Any]]:
    """The options a version ``external_select`` offers for what was typed: matching suggestions, newest first.

    What was typed comes first when it is a new version (not in the history yet): a select can
    only choose among options, and deploying a version never deployed before is the usual case.
    The form checks it against the runbook's pattern on submission either way.
    """
    typed = typed.strip()
    matching = [version for version in state.versions if typed.lower() in version.lower()]
    options = [_option(version) for version in matching]
    valid_new = typed and typed not in matching and len(typed) <= MAX_OPTION_VALUE_CHARS
    if valid_new and (pattern is None or re.fullmatch(pattern, typed)):
        options.insert(0, _option(typed, text=f"{typed} (as typed)"))
    return options[:MAX_OPTIONS]


def field_name(action_id: object) -> str | None:
    """``opsbot_form:version`` → ``version``; None for any other action id."""
    if isinstance(action_id, str) and action_id.startswith(FIELD_ACTION):
        name = action_id[len(FIELD_ACTION) :]
        return name if re.fullmatch(r"[a-z_][a-z0-9_]{0,40}", name) else None
    return None


def errors_answer(errors: Mapping[str, str], block_ids: Mapping[str, str], fallback_block: str | None) -> dict[str, Any]:
    """``response_action: errors`` keyed by the block of each field (unknown fields go to ``fallback_block``)."""
    shown: dict[str, str] = {}
    for name, message in errors.items():
        block = block_ids.get(name) or fallback_block
        if block is not None:
            shown.setdefault(block, _clip(message, MAX_ERROR_CHARS))
    return {"response_action": "errors", "errors": shown}


def picked_runbook(actions: Sequence[Any]) -> str | None:
    """The runbook chosen in the picker's select, from a ``block_actions`` payload's actions."""
    for action in actions:
        if isinstance(action, Mapping) and action.get("action_id") == PICK_ACTION:
            value = _mapping(action.get("selected_option")).get("value")
            return value if isinstance(value, str) and re.fullmatch(r"[a-z][a-z0-9-]{0,30}", value) else None
    return None


# -- helpers ------------------------------------------------------------------------------------


def _field_block(field: FormField, service: str | None) -> dict[str, Any]:
    action_id = FIELD_ACTION + field.name
    block_id = f"{field.name}~{service}" if field.kind in ("env", "version") and service else field.name
    if field.kind == "env" and not field.options:
        return {
            "type": "context",
            "block_id": block_id,
            "elements": [{"type": "mrkdwn", "text": f"*{field.label}:* choose a service first."}],
        }
    element: dict[str, Any]
    if field.kind in ("service", "env", "choice"):
        element = {"type": "static_select", "action_id": action_id, "placeholder": _plain(f"Choose {field.label.lower()}")}
        element["options"] = [_option(value) for value in field.options[:MAX_OPTIONS]]
        if field.initial in field.options:
            element["initial_option"] = _option(field.initial)
    elif field.kind == "number":
        element = {"type": "number_input", "action_id": action_id, "is_decimal_allowed": False}
        element.update(
            {key: str(value) for key, value in (("min_value", field.minimum), ("max_value", field.maximum)) if value is not None}
        )
        if field.initial is not None:
            element["initial_value"] = field.initial
    elif field.kind == "version":
        element = {
            "type": "external_select",
            "action_id": action_id,
            "min_query_length": 0,
            "placeholder": _plain("Type or choose a version"),
        }
        if field.initial:
            element["initial_option"] = _option(field.initial)
    else:
        element = {"type": "plain_text_input", "action_id": action_id}
        if field.initial is not None:
            element["initial_value"] = field.initial
    block: dict[str, Any] = {
        "type": "input",
        "block_id": block_id,
        "label": _plain(field.label),
        "optional": field.optional,
        "element": element,
    }
    hint = " ".join(part for part in (field.hint, f"Must match {field.pattern}." if field.pattern else "") if part)
    if hint:
        block["hint"] = _plain(_clip(hint, MAX_LABEL_CHARS))
    if field.refreshes:
        block["dispatch_action"] = True
    return block


def _channel_block(channel: str | None) -> dict[str, Any]:
    """Where to post: the channel the form came from, unless changed (a global shortcut has none)."""
    element: dict[str, Any] = {
        "type": "conversations_select",
        "action_id": FIELD_ACTION + CHANNEL_FIELD,
        "response_url_enabled": True,
        "filter": {"include": ["public", "private"], "exclude_bot_users": True},
    }
    if channel:
        element["initial_conversation"] = channel
    else:
        element["default_to_current_conversation"] = True
    return {
        "type": "input",
        "block_id": CHANNEL_FIELD,
        "label": _plain("Post the request in"),
        "hint": _plain("Approvers are asked there; opsbot must be in the channel."),
        "element": element,
    }


def _initial_of(form: RunbookForm, kind: str) -> str | None:
    return next((field.initial for field in form.fields if field.kind == kind), None)


def _element_value(element: Mapping[str, Any]) -> str:
    selected = element.get("selected_option")
    if isinstance(selected, Mapping):
        value = selected.get("value")
        return value if isinstance(value, str) else ""
    value = element.get("value")
    return value if isinstance(value, str) else ""


def _option(value: str, *, text: str | None = None, description: str | None = None) -> dict[str, Any]:
    option: dict[str, Any] = {"text": _plain(_clip(text or value, MAX_OPTION_TEXT_CHARS)), "value": value[:MAX_OPTION_VALUE_CHARS]}
    if description:
        option["description"] = _plain(_clip(description, MAX_OPTION_TEXT_CHARS))
    return option


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text}


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
