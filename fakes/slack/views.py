"""Surfaces of the fake Slack Web API: ``views.open``, ``views.push``, ``views.update``, ``views.publish``.

Slack's rules that a bot trips over in production, so the fake enforces them:

- A modal opens only with a ``trigger_id`` from an interaction, used **once** and within
  **3 seconds** (``invalid_trigger_id``, ``exchanged_trigger_id``, ``expired_trigger_id``).
- A modal stack holds at most three views (``push_limit_reached``).
- ``views.update`` names a view by ``view_id`` or ``external_id`` (``not_found``); ``hash``
  guards against racing updates (``hash_conflict``); every change issues a new hash.
- A view over Slack's limits is refused whole with ``invalid_arguments`` and one
  ``[ERROR] <why> [json-pointer:/view/...]`` line per problem: 100 blocks, a title and
  submit/close labels of at most 24 characters, ``private_metadata`` up to 3,000,
  ``callback_id``/``external_id`` up to 255, a ``submit`` label on a modal with inputs,
  ``initial_option`` present among a select's options (checked in ``block_kit``).
- ``views.publish`` takes only ``type: home`` views, for a user of the workspace.

Tests read what was shown with :meth:`ViewRegistry.snapshot`, :meth:`ViewRegistry.home`
and build what Slack would send back (a ``view_submission`` with ``state.values``) with
:func:`submission_state`.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .arguments import optional_str, required_str
from .block_kit import view_block_problems
from .records import ApiError, JsonDict

if TYPE_CHECKING:
    from .workspace import Workspace

TRIGGER_LIFETIME_SECONDS = 3.0
MAX_VIEW_BLOCKS = 100
MAX_STACK = 3
MAX_VIEW_BYTES = 250_000
MAX_TITLE = 24
MAX_PRIVATE_METADATA = 3000
MAX_ID = 255
VIEW_TYPES = ("modal", "home")


@dataclass(frozen=True)
class View:
    """One view as Slack holds it (an immutable snapshot)."""

    id: str
    type: str
    user: str
    payload: JsonDict
    hash: str
    root_view_id: str
    previous_view_id: str | None = None
    closed: bool = False

    @property
    def blocks(self) -> list[JsonDict]:
        return list(self.payload.get("blocks") or [])

    @property
    def callback_id(self) -> str:
        return str(self.payload.get("callback_id") or "")

    @property
    def private_metadata(self) -> str:
        return str(self.payload.get("private_metadata") or "")

    @property
    def external_id(self) -> str:
        return str(self.payload.get("external_id") or "")

    def to_slack(self, team_id: str, bot_id: str) -> JsonDict:
        """The ``view`` object Slack answers with (and puts in interaction payloads)."""
        body: JsonDict = {
            "id": self.id,
            "team_id": team_id,
            "type": self.type,
            "title": self.payload.get("title"),
            "submit": self.payload.get("submit"),
            "close": self.payload.get("close"),
            "blocks": self.blocks,
            "private_metadata": self.private_metadata,
            "callback_id": self.callback_id,
            "state": {"values": {}},
            "hash": self.hash,
            "clear_on_close": bool(self.payload.get("clear_on_close", False)),
            "notify_on_close": bool(self.payload.get("notify_on_close", False)),
            "root_view_id": self.root_view_id,
            "previous_view_id": self.previous_view_id,
            "app_id": "A0FAKEAPP",
            "external_id": self.external_id,
            "bot_id": bot_id,
        }
        return body


@dataclass
class _Trigger:
    user: str
    issued_at: float
    used: bool = False


@dataclass
class ViewRegistry:
    """Every view shown, open modal stacks, each user's Home tab, and issued trigger ids."""

    clock: Callable[[], float] = time.monotonic
    trigger_lifetime: float = TRIGGER_LIFETIME_SECONDS
    views: dict[str, View] = field(default_factory=dict)
    stacks: dict[str, list[str]] = field(default_factory=dict)
    homes: dict[str, str] = field(default_factory=dict)
    history: list[View] = field(default_factory=list)
    _triggers: dict[str, _Trigger] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # -- what tests use ----------------------------------------------------------------

    def issue_trigger(self, user: str) -> str:
        """A trigger_id as Slack puts in an interaction payload for ``user``."""
        number = next(self._ids)
        trigger_id = f"{number:011d}.{number * 7919:09d}.{number:032x}"
        self._triggers[trigger_id] = _Trigger(user=user, issued_at=self.clock())
        return trigger_id

    def snapshot(self, view_id: str) -> View:
        """The current state of one view (``KeyError`` when none has that id)."""
        return self.views[view_id]

    def home(self, user: str) -> View | None:
        """The Home tab last published for ``user``."""
        view_id = self.homes.get(user)
        return self.views[view_id] if view_id is not None else None

    def open_stack(self, user: str) -> list[View]:
        """The user's open modal stack, bottom first (empty when none is open)."""
        for ids in self.stacks.values():
            if ids and self.views[ids[0]].user == user:
                return [self.views[i] for i in ids]
        return []

    def close_stack(self, root_view_id: str) -> None:
        """The user closed the modal (or submitted with ``response_action: clear``)."""
        for view_id in self.stacks.pop(root_view_id, []):
            self.views[view_id] = _replace(self.views[view_id], closed=True)

    # -- what the methods do ------------------------------------------------------------

    def take_trigger(self, trigger_id: str) -> _Trigger:
        trigger = self._triggers.get(trigger_id)
        if trigger is None:
            raise ApiError("invalid_trigger_id")
        if trigger.used:
            raise ApiError("exchanged_trigger_id")
        if self.clock() - trigger.issued_at > self.trigger_lifetime:
            raise ApiError("expired_trigger_id")
        trigger.used = True
        return trigger

    def new_view(self, kind: str, user: str, payload: JsonDict, *, root: str | None = None, previous: str | None = None) -> View:
        self._check_external_id(payload, replacing=None)
        view_id = f"V{next(self._ids):010d}"
        view = View(
            id=view_id, type=kind, user=user, payload=payload, hash=self._hash(), root_view_id=root or view_id, previous_view_id=previous
        )
        self._store(view)
        return view

    def replace(self, old: View, payload: JsonDict, given_hash: str | None) -> View:
        if given_hash is not None and given_hash != old.hash:
            raise ApiError("hash_conflict")
        self._check_external_id(payload, replacing=old.id)
        new = _replace(old, payload=payload, hash=self._hash())
        self._store(new)
        return new

    def find(self, view_id: str | None, external_id: str | None) -> View:
        if view_id is not None:
            view = self.views.get(view_id)
        else:
            view = next((v for v in self.views.values() if external_id and v.external_id == external_id), None)
        if view is None or view.closed:
            raise ApiError("not_found")
        return view

    def _store(self, view: View) -> None:
        self.views[view.id] = view
        self.history.append(view)

    def _hash(self) -> str:
        return f"{int(time.time())}.{next(self._ids):08d}"

    def _check_external_id(self, payload: JsonDict, *, replacing: str | None) -> None:
        external = payload.get("external_id")
        if not external:
            return
        for view in self.views.values():
            if view.external_id == external and view.id != replacing and not view.closed:
                raise ApiError("duplicate_external_id")


def _replace(view: View, **changes: Any) -> View:
    import dataclasses

    return dataclasses.replace(view, **changes)


# -- validation --------------------------------------------------------------------------


def parse_view(params: Mapping[str, Any], *, allowed: tuple[str, ...]) -> JsonDict:
    """Decode and check the ``view`` argument; raise ``invalid_arguments`` listing each problem."""
    raw = params.get("view")
    if raw is None or raw == "":
        raise _invalid(["missing required field: view [json-pointer:/view]"])
    if len(raw if isinstance(raw, str) else json.dumps(raw)) > MAX_VIEW_BYTES:
        raise ApiError("view_too_large")
    try:
        view = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError as exc:
        raise _invalid(["view is not valid JSON [json-pointer:/view]"]) from exc
    if not isinstance(view, dict):
        raise _invalid(["expected an object [json-pointer:/view]"])
    problems = view_problems(view, allowed)
    if problems:
        raise _invalid(problems)
    return view


def view_problems(view: JsonDict, allowed: tuple[str, ...]) -> list[str]:
    """Every way ``view`` breaks Slack's documented limits, as ``why [json-pointer:where]`` lines."""
    problems: list[str] = []

    def fail(why: str, where: str) -> None:
        problems.append(f"{why} [json-pointer:/view{where}]")

    kind = view.get("type")
    if kind not in allowed:
        fail(f"must be one of: {', '.join(allowed)}", "/type")
    blocks = view.get("blocks")
    if not isinstance(blocks, list):
        fail("missing required field: blocks", "/blocks")
        blocks = []
    if kind == "modal":
        _label(view, "title", fail, required=True)
        _label(view, "close", fail, required=False)
        _label(view, "submit", fail, required=any(isinstance(b, dict) and b.get("type") == "input" for b in blocks))
    for name, limit in (("private_metadata", MAX_PRIVATE_METADATA), ("callback_id", MAX_ID), ("external_id", MAX_ID)):
        value = view.get(name)
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            fail(f"must be a string of at most {limit} characters", f"/{name}")
    problems.extend(view_block_problems(blocks, MAX_VIEW_BLOCKS))
    return problems


def _label(view: JsonDict, name: str, fail: Callable[[str, str], None], *, required: bool) -> None:
    value = view.get(name)
    if value is None:
        if required:
            fail(f"missing required field: {name}", f"/{name}")
        return
    if not isinstance(value, dict) or value.get("type") != "plain_text":
        fail("must be a plain_text object", f"/{name}")
        return
    text = value.get("text")
    if not isinstance(text, str) or not text:
        fail("missing required field: text", f"/{name}/text")
    elif len(text) > MAX_TITLE:
        fail(f"must be less than {MAX_TITLE + 1} characters", f"/{name}/text")


def _invalid(problems: list[str]) -> ApiError:
    return ApiError("invalid_arguments", extra={"response_metadata": {"messages": [f"[ERROR] {p}" for p in problems]}})


# -- the Web API methods -------------------------------------------------------------------


def _answer(ws: Workspace, view: View) -> JsonDict:
    return {"view": view.to_slack(ws.identity.team_id, ws.identity.bot_id)}


def _trigger(params: Mapping[str, Any]) -> str:
    trigger_id = optional_str(params, "trigger_id") or optional_str(params, "interactivity_pointer")
    if trigger_id is None:
        raise _invalid(["missing required field: trigger_id"])
    return trigger_id


def views_open(ws: Workspace, params: JsonDict) -> JsonDict:
    view = parse_view(params, allowed=("modal",))
    trigger = ws.views.take_trigger(_trigger(params))
    opened = ws.views.new_view("modal", trigger.user, view)
    ws.views.stacks[opened.id] = [opened.id]
    return _answer(ws, opened)


def views_push(ws: Workspace, params: JsonDict) -> JsonDict:
    view = parse_view(params, allowed=("modal",))
    trigger = ws.views.take_trigger(_trigger(params))
    stack = ws.views.open_stack(trigger.user)
    if not stack:
        raise ApiError("not_found")
    if len(stack) >= MAX_STACK:
        raise ApiError("push_limit_reached")
    root = stack[0].id
    pushed = ws.views.new_view("modal", trigger.user, view, root=root, previous=stack[-1].id)
    ws.views.stacks[root].append(pushed.id)
    return _answer(ws, pushed)


def views_update(ws: Workspace, params: JsonDict) -> JsonDict:
    view_id = optional_str(params, "view_id")
    external_id = optional_str(params, "external_id")
    if view_id is None and external_id is None:
        raise _invalid(["missing required field: view_id or external_id"])
    old = ws.views.find(view_id, external_id)
    view = parse_view(params, allowed=(old.type,))
    return _answer(ws, ws.views.replace(old, view, optional_str(params, "hash")))


def views_publish(ws: Workspace, params: JsonDict) -> JsonDict:
    user = required_str(params, "user_id")
    if user not in ws.users:
        raise ApiError("user_not_found")
    view = parse_view(params, allowed=("home",))
    current = ws.views.home(user)
    if current is None:
        if params.get("hash"):
            raise ApiError("hash_conflict")
        published = ws.views.new_view("home", user, view)
    else:
        published = ws.views.replace(current, view, optional_str(params, "hash"))
    ws.views.homes[user] = published.id
    return _answer(ws, published)


# -- what Slack sends back -------------------------------------------------------------------


def submission_state(view: View, values: Mapping[str, object]) -> JsonDict:
    """``view.state`` as Slack sends it in a ``view_submission``, from what a person entered.

    ``values`` maps an element's ``action_id`` (or its block's ``block_id``) to what was
    entered: text for text and number inputs, an option ``value`` for selects. Every input the
    person did not touch is sent too, as Slack does, holding its initial value (or none).
    Slack's UI can only pick a static select's listed options, so naming any other value is a
    test bug (``ValueError``), not something opsbot must survive.
    """
    state: dict[str, dict[str, JsonDict]] = {}
    for index, block in enumerate(view.blocks):
        if block.get("type") not in ("input", "actions", "section"):
            continue
        is_input = block.get("type") == "input"
        elements = [block["element"]] if is_input else list(block.get("elements") or [block.get("accessory") or {}])
        block_id = str(block.get("block_id") or f"b{index}")
        for element in elements:
            action_id = str(element.get("action_id") or "")
            key = action_id if action_id in values else block_id if block_id in values else None
            if not element.get("type"):
                continue
            if key is not None:
                state.setdefault(block_id, {})[action_id] = _entered(element, values[key])
            elif is_input:
                state.setdefault(block_id, {})[action_id] = _untouched(element)
    return {"values": state}


def _untouched(element: JsonDict) -> JsonDict:
    """An input left as drawn: its initial value or option, or nothing."""
    kind = str(element["type"])
    if kind.endswith("_select"):
        return {"type": kind, "selected_option": element.get("initial_option")}
    return {"type": kind, "value": element.get("initial_value")}


def _entered(element: JsonDict, value: object) -> JsonDict:
    kind = str(element["type"])
    if kind in ("static_select", "external_select"):
        if value is None:
            return {"type": kind, "selected_option": None}
        option = (
            _option(element, str(value))
            if kind == "static_select"
            else {"text": {"type": "plain_text", "text": str(value)}, "value": str(value)}
        )
        return {"type": kind, "selected_option": option}
    if kind in ("users_select", "conversations_select", "channels_select"):
        field_name = {
            "users_select": "selected_user",
            "conversations_select": "selected_conversation",
            "channels_select": "selected_channel",
        }[kind]
        return {"type": kind, field_name: value}
    return {"type": kind, "value": None if value is None else str(value)}


def _option(element: JsonDict, value: str) -> JsonDict:
    options = list(element.get("options") or [])
    for group in element.get("option_groups") or []:
        options.extend(group.get("options") or [])
    for option in options:
        if option.get("value") == value:
            return dict(option)
    raise ValueError(f"{value!r} is not among the select's options {[o.get('value') for o in options]}")
