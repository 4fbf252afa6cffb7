"""Reading Slack Web API arguments the way Slack does.

slack_sdk sends the same call either form-encoded (every value a string,
booleans as ``1``/``0``) or as JSON (real types), so argument readers must
accept both spellings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .records import ApiError

TRUE_STRINGS = frozenset({"1", "true", "yes", "on"})


def missing_argument(name: str) -> ApiError:
    """Slack's answer to a required argument that was not sent."""
    return ApiError(
        "invalid_arguments",
        extra={"response_metadata": {"messages": [f"[ERROR] missing required field: {name}"]}},
    )


def required_str(params: Mapping[str, Any], name: str, *, error: str | None = None) -> str:
    """A required string argument; ``error`` overrides Slack's generic code."""
    value = params.get(name)
    if value is None or value == "":
        raise ApiError(error) if error else missing_argument(name)
    return str(value)


def optional_str(params: Mapping[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    return str(value)


def flag(params: Mapping[str, Any], name: str) -> bool:
    """A boolean argument: JSON ``true`` or form ``1``/``true``."""
    value = params.get(name)
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in TRUE_STRINGS if value is not None else False


def positive_int(params: Mapping[str, Any], name: str) -> int:
    """A required integer argument greater than zero (e.g. upload ``length``)."""
    raw = required_str(params, name)
    try:
        value = int(raw)
    except ValueError as exc:
        raise ApiError("invalid_arguments") from exc
    if value <= 0:
        raise ApiError("invalid_arguments")
    return value
