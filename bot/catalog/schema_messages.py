"""Schema errors said in opsbot's words: what was wrong and what is allowed.

pydantic's texts (``Field required``, ``String should match pattern '^[a-z]…$'``) are written
for programmers; the person reading ``opsbot validate`` is fixing a YAML file, so each error
type gets a sentence that names the allowed values, and unknown keys name the nearest one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from commands.suggest import did_you_mean, known_list

PATTERN_MEANINGS = {
    r"^[a-z0-9][a-z0-9_.-]{0,62}$": "lower-case letters, digits, '-', '_' and '.', starting with a letter or digit (at most 63)",
    r"^[a-z][a-z0-9-]{0,30}$": "lower-case letters, digits and '-', starting with a letter (at most 31)",
    r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$": "backend.action in lower case, like kubernetes.set_image",
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$": "a Kubernetes name: lower-case letters, digits and '-'",
    r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$": "a Kubernetes name: lower-case letters, digits, '-' and '.'",
}

_NAME_PATTERNS = (r"^[a-z0-9][a-z0-9_.-]{0,62}$", r"^[a-z][a-z0-9-]{0,30}$")
"""Names for which a re-spelt suggestion is safe; an action is suggested from the registry instead."""

_TYPE_NAMES = {
    "str": "text",
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "list": "a list",
    "dict": "a mapping of keys",
    "NoneType": "empty",
}


def schema_message(item: Any, allowed_keys: Iterable[str] = ()) -> str:
    """One pydantic error item, reworded; ``allowed_keys`` are the keys valid where an unknown one sits."""
    kind = str(item.get("type", ""))
    ctx = item.get("ctx") or {}
    given = item.get("input")
    if kind == "extra_forbidden":
        return unknown_key_message(str(item["loc"][-1]) if item.get("loc") else "", allowed_keys)
    if kind == "missing":
        return "missing; this key is required here"
    if kind == "string_pattern_mismatch":
        return _pattern_message(given, str(ctx.get("pattern", "")))
    if kind in ("string_type", "int_type", "int_parsing", "bool_type", "bool_parsing", "float_type", "float_parsing"):
        return f"must be {_expected(kind)}; got {_shown(given)}"
    if kind in ("list_type", "tuple_type"):
        return f"must be a list (like [a, b]); got {_shown(given)}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"must be a mapping of keys; got {_shown(given)}"
    if kind == "literal_error":
        return f"{_shown(given)} is not allowed; use one of: {_literal_choices(str(ctx.get('expected', '')))}"
    if kind == "too_short":
        return "must not be empty"
    if kind == "too_long":
        return f"has too many entries; at most {ctx.get('max_length')}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind in ("greater_than_equal", "greater_than"):
        return f"{_shown(given)} is too small; the minimum is {ctx.get('ge', ctx.get('gt'))}"
    if kind in ("less_than_equal", "less_than"):
        return f"{_shown(given)} is too large; the maximum is {ctx.get('le', ctx.get('lt'))}"
    if kind in ("int_from_float",):
        return f"must be a whole number; got {_shown(given)}"
    if kind.startswith("timedelta"):
        return f"must be a duration like 30s, 15m, 2h or 7d; got {_shown(given)}"
    message = str(item.get("msg", "invalid value"))
    return message.removeprefix("Value error, ")


def unknown_key_message(key: str, allowed_keys: Iterable[str]) -> str:
    """``unknown key 'descripton'; did you mean description? allowed: …``."""
    allowed = sorted(allowed_keys)
    if not allowed:
        return f"unknown key {key!r}"
    suggestion = did_you_mean(key, allowed)
    hint = f"; did you mean {suggestion}?" if suggestion else ""
    return f"unknown key {key!r}{hint} Allowed keys: {known_list(allowed, 30)}"


def valid_name_like(word: str, pattern: str) -> str | None:
    """A spelling of ``word`` that the pattern accepts (``Flush_Cache`` → ``flush-cache``), or None."""
    candidates = [word.lower(), re.sub(r"[^a-z0-9-]+", "-", word.lower()).strip("-"), re.sub(r"[^a-z0-9_]+", "_", word.lower()).strip("_")]
    for candidate in candidates:
        if candidate != word and re.fullmatch(pattern, candidate):
            return candidate
    return None


def _pattern_message(given: object, pattern: str) -> str:
    meaning = PATTERN_MEANINGS.get(pattern, f"text matching {pattern}")
    message = f"{_shown(given)} is not allowed here; use {meaning}"
    if isinstance(given, str) and pattern in _NAME_PATTERNS:
        suggestion = valid_name_like(given, pattern)
        if suggestion is not None:
            message += f"; did you mean {suggestion}?"
    return message


def _expected(kind: str) -> str:
    return _TYPE_NAMES.get(kind.split("_", maxsplit=1)[0], "another kind of value")


def _literal_choices(expected: str) -> str:
    return ", ".join(part.strip().strip("'") for part in re.split(r",| or ", expected) if part.strip())


def _shown(value: object) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "…'"
