"""Block Kit validation with Slack's published limits.

Slack rejects a whole message when any block breaks a limit, answering
``invalid_blocks`` with one ``[ERROR] <why> [json-pointer:<where>]`` line per
problem in ``response_metadata.messages`` (and the bare lines in ``errors``).
The bot builds long runbook output into blocks, so the fake must refuse what
Slack refuses; otherwise a message that works in tests is dropped in
production. slack_sdk's model classes are lenient (unknown types parse to a
generic ``Block``), so the limits below are checked by hand from Slack's
Block Kit reference rather than delegated to them.
"""

from __future__ import annotations

import json
from typing import Any

from .records import ApiError, JsonDict

MAX_MESSAGE_TEXT = 40_000
MAX_BLOCKS = 50
MAX_ATTACHMENTS = 100

BLOCK_TYPES = frozenset(
    {
        "actions", "call", "context", "context_actions", "divider", "file", "header",
        "image", "input", "markdown", "rich_text", "section", "table", "video",
    }
)  # fmt: skip
PLAIN_TEXT_ONLY = ("plain_text",)
ANY_TEXT = ("plain_text", "mrkdwn")


def parse_json_field(raw: object, *, error: str) -> Any:
    """Decode a JSON-string form field (``blocks``, ``attachments``...).

    Form-encoded requests carry structured fields as JSON strings while JSON
    requests carry them as values; Slack accepts both, so the fake does too.
    """
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ApiError(error) from exc


def parse_blocks(raw: object) -> list[JsonDict] | None:
    """Return the blocks array, or None when the field is absent.

    Slack answers ``invalid_blocks_format`` (not ``invalid_blocks``) when the
    field is not JSON or not an array; limits are checked separately.
    """
    if raw is None:
        return None
    blocks = parse_json_field(raw, error="invalid_blocks_format")
    if not isinstance(blocks, list):
        raise ApiError("invalid_blocks_format")
    return blocks


def check_text_length(text: object) -> None:
    """Refuse message text over Slack's 40,000 character cap."""
    if isinstance(text, str) and len(text) > MAX_MESSAGE_TEXT:
        raise ApiError("msg_too_long")


def check_attachments(raw: object) -> list[JsonDict] | None:
    """Parse legacy attachments and apply the 100-attachment cap."""
    if raw is None:
        return None
    attachments = parse_json_field(raw, error="invalid_attachments")
    if not isinstance(attachments, list):
        raise ApiError("invalid_attachments")
    if len(attachments) > MAX_ATTACHMENTS:
        raise ApiError("too_many_attachments")
    return attachments


def validate_blocks(blocks: list[Any], root: str = "/blocks") -> None:
    """Raise ``invalid_blocks`` listing every problem, like Slack does."""
    problems = _BlockChecker().check_message(blocks, root)
    if problems:
        raise ApiError(
            "invalid_blocks",
            extra={
                "errors": problems,
                "response_metadata": {"messages": [f"[ERROR] {p}" for p in problems]},
            },
        )


def view_block_problems(blocks: list[Any], max_blocks: int) -> list[str]:
    """The problems of a modal's or Home tab's blocks (pointers under ``/view/blocks``)."""
    return _BlockChecker(max_blocks).check_message(blocks, "/view/blocks")


class _BlockChecker:
    """Walks a blocks array collecting ``"<why> [json-pointer:<where>]"`` lines."""

    def __init__(self, max_blocks: int = MAX_BLOCKS) -> None:
        self.max_blocks = max_blocks
        self.problems: list[str] = []
        self.block_ids: set[str] = set()

    def fail(self, why: str, pointer: str) -> None:
        self.problems.append(f"{why} [json-pointer:{pointer}]")

    def check_message(self, blocks: list[Any], root: str) -> list[str]:
        if len(blocks) > self.max_blocks:
            self.fail(f"no more than {self.max_blocks} items allowed", root)
        for index, block in enumerate(blocks):
            self.check_block(block, f"{root}/{index}")
        return self.problems

    def check_block(self, block: object, ptr: str) -> None:
        if not isinstance(block, dict):
            self.fail("expected an object", ptr)
            return
        kind = block.get("type")
        if not isinstance(kind, str) or not kind:
            self.fail("missing required field: type", ptr)
            return
        if kind not in BLOCK_TYPES:
            self.fail(f"unsupported type: {kind}", f"{ptr}/type")
            return
        self.check_block_id(block.get("block_id"), f"{ptr}/block_id")
        checker = getattr(self, f"block_{kind}", None)
        if checker is not None:
            checker(block, ptr)

    def check_block_id(self, block_id: object, ptr: str) -> None:
        if block_id is None:
            return
        if not isinstance(block_id, str) or not block_id:
            self.fail("must be a non-empty string", ptr)
        elif len(block_id) > 255:
            self.fail("must be less than 256 characters", ptr)
        elif block_id in self.block_ids:
            self.fail(f"duplicate block_id: {block_id}", ptr)
        else:
            self.block_ids.add(block_id)

    # -- text objects ---------------------------------------------------------------

    def text(self, obj: object, ptr: str, limit: int, kinds: tuple[str, ...] = ANY_TEXT, required: bool = True) -> None:
        """Check a composition text object's type and length."""
        if obj is None:
            if required:
                self.fail("missing required field: text", ptr)
            return
        if not isinstance(obj, dict):
            self.fail("expected a text object", ptr)
            return
        if obj.get("type") not in kinds:
            self.fail(f"must be one of: {', '.join(kinds)}", f"{ptr}/type")
        self.string(obj.get("text"), f"{ptr}/text", limit, required=True, min_len=1)

    def string(self, value: object, ptr: str, limit: int, *, required: bool = False, min_len: int = 0) -> None:
        """Check a plain string field's presence and length bounds."""
        if value is None:
            if required:
                self.fail(f"missing required field: {ptr.rsplit('/', 1)[-1]}", ptr)
            return
        if not isinstance(value, str):
            self.fail("must be a string", ptr)
        elif len(value) < min_len:
            self.fail(f"must be more than {min_len - 1} characters", ptr)
        elif len(value) > limit:
            self.fail(f"must be less than {limit + 1} characters", ptr)

    def array(self, value: object, ptr: str, low: int, high: int) -> list[Any]:
        """Check an array's item count; returns it (or [] when malformed)."""
        if not isinstance(value, list):
            self.fail("missing required field: " + ptr.rsplit("/", 1)[-1], ptr)
            return []
        if len(value) < low:
            self.fail(f"must provide at least {low} items", ptr)
        if len(value) > high:
            self.fail(f"no more than {high} items allowed", ptr)
        return value

    # -- blocks --------------------------------------------------------------------------

    def block_section(self, block: JsonDict, ptr: str) -> None:
        if block.get("text") is None and block.get("fields") is None:
            self.fail("must provide either text or fields", ptr)
        self.text(block.get("text"), f"{ptr}/text", 3000, required=False)
        if block.get("fields") is not None:
            for i, item in enumerate(self.array(block.get("fields"), f"{ptr}/fields", 1, 10)):
                self.text(item, f"{ptr}/fields/{i}", 2000)
        if block.get("accessory") is not None:
            self.element(block["accessory"], f"{ptr}/accessory", set())

    def block_header(self, block: JsonDict, ptr: str) -> None:
        self.text(block.get("text"), f"{ptr}/text", 150, PLAIN_TEXT_ONLY)

    def block_actions(self, block: JsonDict, ptr: str) -> None:
        seen: set[str] = set()
        for i, element in enumerate(self.array(block.get("elements"), f"{ptr}/elements", 1, 25)):
            self.element(element, f"{ptr}/elements/{i}", seen)

    def block_context(self, block: JsonDict, ptr: str) -> None:
        for i, element in enumerate(self.array(block.get("elements"), f"{ptr}/elements", 1, 10)):
            if isinstance(element, dict) and element.get("type") == "image":
                self.image_fields(element, f"{ptr}/elements/{i}")
            else:
                self.text(element, f"{ptr}/elements/{i}", 3000)

    def block_image(self, block: JsonDict, ptr: str) -> None:
        self.image_fields(block, ptr)
        self.text(block.get("title"), f"{ptr}/title", 2000, PLAIN_TEXT_ONLY, required=False)

    def block_input(self, block: JsonDict, ptr: str) -> None:
        self.text(block.get("label"), f"{ptr}/label", 2000, PLAIN_TEXT_ONLY)
        self.text(block.get("hint"), f"{ptr}/hint", 2000, PLAIN_TEXT_ONLY, required=False)
        if block.get("element") is None:
            self.fail("missing required field: element", ptr)
        else:
            self.element(block["element"], f"{ptr}/element", set())

    def block_markdown(self, block: JsonDict, ptr: str) -> None:
        self.string(block.get("text"), f"{ptr}/text", 12_000, required=True, min_len=1)

    def block_rich_text(self, block: JsonDict, ptr: str) -> None:
        if not isinstance(block.get("elements"), list):
            self.fail("missing required field: elements", f"{ptr}/elements")

    def image_fields(self, obj: JsonDict, ptr: str) -> None:
        if obj.get("image_url") is None and obj.get("slack_file") is None:
            self.fail("must provide either image_url or slack_file", ptr)
        self.string(obj.get("image_url"), f"{ptr}/image_url", 3000)
        self.string(obj.get("alt_text"), f"{ptr}/alt_text", 2000, required=True)

    # -- interactive elements -------------------------------------------------------------

    def element(self, element: object, ptr: str, action_ids: set[str]) -> None:
        """Check one interactive element; ``action_ids`` spans its block."""
        if not isinstance(element, dict) or not isinstance(element.get("type"), str):
            self.fail("missing required field: type", ptr)
            return
        action_id = element.get("action_id")
        self.string(action_id, f"{ptr}/action_id", 255)
        if isinstance(action_id, str):
            if action_id in action_ids:
                self.fail(f"duplicate action_id: {action_id}", f"{ptr}/action_id")
            action_ids.add(action_id)
        kind = element["type"]
        if kind == "button":
            self.button(element, ptr)
        elif kind == "image":
            self.image_fields(element, ptr)
        elif kind == "overflow":
            self.options(element.get("options"), f"{ptr}/options", 2, 5)
        elif kind in ("checkboxes", "radio_buttons"):
            self.options(element.get("options"), f"{ptr}/options", 1, 10)
        elif kind.endswith("_select"):
            self.select(element, ptr)
        elif kind == "number_input":
            self.number_input(element, ptr)
        elif kind == "plain_text_input":
            self.plain_text_input(element, ptr)
        if element.get("confirm") is not None:
            self.confirm(element["confirm"], f"{ptr}/confirm")

    def button(self, element: JsonDict, ptr: str) -> None:
        self.text(element.get("text"), f"{ptr}/text", 75, PLAIN_TEXT_ONLY)
        self.string(element.get("value"), f"{ptr}/value", 2000)
        self.string(element.get("url"), f"{ptr}/url", 3000)
        style = element.get("style")
        if style is not None and style not in ("primary", "danger"):
            self.fail("must be one of: primary, danger", f"{ptr}/style")

    def select(self, element: JsonDict, ptr: str) -> None:
        """Selects: placeholder, up to 100 options, and an ``initial_option`` that is one of them."""
        self.text(element.get("placeholder"), f"{ptr}/placeholder", 150, PLAIN_TEXT_ONLY, required=False)
        kind = element["type"]
        listed: list[Any] = []
        if element.get("options") is not None:
            self.options(element.get("options"), f"{ptr}/options", 1, 100)
            listed = element["options"] if isinstance(element["options"], list) else []
        elif element.get("option_groups") is not None:
            for g, group in enumerate(self.array(element.get("option_groups"), f"{ptr}/option_groups", 1, 100)):
                grouped = group.get("options") if isinstance(group, dict) else None
                self.options(grouped, f"{ptr}/option_groups/{g}/options", 1, 100)
                if isinstance(grouped, list):
                    listed.extend(grouped)
        elif kind == "static_select":
            self.fail("must provide either options or option_groups", ptr)
        initial = element.get("initial_option")
        if initial is None:
            return
        if kind == "static_select" and not any(
            isinstance(o, dict) and o.get("value") == _value(initial) and o.get("text") == _text(initial) for o in listed
        ):
            self.fail("initial_option must be one of the provided options", f"{ptr}/initial_option")
        elif kind == "external_select" and not isinstance(initial, dict):
            self.fail("expected an option object", f"{ptr}/initial_option")
        min_query = element.get("min_query_length")
        if min_query is not None and (not isinstance(min_query, int) or min_query < 0):
            self.fail("must be a non-negative integer", f"{ptr}/min_query_length")

    def number_input(self, element: JsonDict, ptr: str) -> None:
        """``is_decimal_allowed`` is required; bounds and the initial value must agree."""
        if not isinstance(element.get("is_decimal_allowed"), bool):
            self.fail("missing required field: is_decimal_allowed", f"{ptr}/is_decimal_allowed")
        bounds: dict[str, float] = {}
        for name in ("initial_value", "min_value", "max_value"):
            raw = element.get(name)
            if raw is None:
                continue
            try:
                number = float(raw) if isinstance(raw, str) else float("nan")
            except ValueError:
                number = float("nan")
            if number != number or (element.get("is_decimal_allowed") is False and not number.is_integer()):
                self.fail("must be a number string", f"{ptr}/{name}")
            else:
                bounds[name] = number
        low, high, initial = bounds.get("min_value"), bounds.get("max_value"), bounds.get("initial_value")
        if low is not None and high is not None and low > high:
            self.fail("min_value must be less than or equal to max_value", f"{ptr}/min_value")
        if initial is not None and ((low is not None and initial < low) or (high is not None and initial > high)):
            self.fail("initial_value must be between min_value and max_value", f"{ptr}/initial_value")

    def plain_text_input(self, element: JsonDict, ptr: str) -> None:
        """Lengths between 0 and 3,000; an initial value no longer than the maximum."""
        low, high = element.get("min_length"), element.get("max_length")
        if low is not None and (not isinstance(low, int) or not 0 <= low <= 3000):
            self.fail("must be between 0 and 3000", f"{ptr}/min_length")
        if high is not None and (not isinstance(high, int) or not 1 <= high <= 3000):
            self.fail("must be between 1 and 3000", f"{ptr}/max_length")
        if isinstance(low, int) and isinstance(high, int) and low > high:
            self.fail("min_length must be less than or equal to max_length", f"{ptr}/min_length")
        initial = element.get("initial_value")
        if initial is not None:
            self.string(initial, f"{ptr}/initial_value", high if isinstance(high, int) else 3000)
        self.text(element.get("placeholder"), f"{ptr}/placeholder", 150, PLAIN_TEXT_ONLY, required=False)

    def options(self, value: object, ptr: str, low: int, high: int) -> None:
        for i, option in enumerate(self.array(value, ptr, low, high)):
            if not isinstance(option, dict):
                self.fail("expected an option object", f"{ptr}/{i}")
                continue
            self.text(option.get("text"), f"{ptr}/{i}/text", 75)
            self.string(option.get("value"), f"{ptr}/{i}/value", 150)
            self.text(option.get("description"), f"{ptr}/{i}/description", 75, required=False)

    def confirm(self, dialog: object, ptr: str) -> None:
        if not isinstance(dialog, dict):
            self.fail("expected a confirmation dialog object", ptr)
            return
        self.text(dialog.get("title"), f"{ptr}/title", 100, PLAIN_TEXT_ONLY)
        self.text(dialog.get("text"), f"{ptr}/text", 300)
        self.text(dialog.get("confirm"), f"{ptr}/confirm", 30, PLAIN_TEXT_ONLY)
        self.text(dialog.get("deny"), f"{ptr}/deny", 30, PLAIN_TEXT_ONLY)


def _value(option: object) -> object:
    return option.get("value") if isinstance(option, dict) else None


def _text(option: object) -> object:
    return option.get("text") if isinstance(option, dict) else None
