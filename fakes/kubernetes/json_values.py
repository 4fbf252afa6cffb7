"""JSON-value helpers shared by the store, the patchers and the controller.

The fake keeps every object as a plain ``dict`` in Kubernetes' JSON shape, so
these helpers stand in for what Go gets from typed structs: semantic equality
(nil and empty are the same), dropping ``null`` like a typed decode does, and
Go's ``%v`` rendering for error messages that must read like the real ones.
"""

from __future__ import annotations

import copy
import json
from typing import Any, TypeVar

JsonObject = dict[str, Any]
"""A decoded JSON object (a Kubernetes object, or any part of one)."""

T = TypeVar("T")


def deep_copy(value: T) -> T:
    """Return an independent copy, so callers never alias stored objects."""
    return copy.deepcopy(value)


def json_equal(left: Any, right: Any) -> bool:
    """Compare JSON values the way a JSON document defines equality.

    Python's ``True == 1`` would make a boolean equal a number; JSON (and Go's
    decoded ``interface{}``) keeps them apart, which matters for JSON Patch
    ``test`` and for merge-key lookups.
    """
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, (int, float)) and isinstance(right, (int, float)):
        return left == right
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(json_equal(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(json_equal(a, b) for a, b in zip(left, right, strict=True))
    return type(left) is type(right) and bool(left == right)


def prune_nulls(value: Any) -> Any:
    """Drop ``null`` members recursively, as decoding into a Go struct does.

    A client may send ``"creationTimestamp": null`` (kubectl rollout undo does);
    the real apiserver stores the field as absent, so the fake must as well.
    """
    if isinstance(value, dict):
        return {k: prune_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [prune_nulls(v) for v in value]
    return value


def canonical(value: Any) -> Any:
    """Normalise for semantic comparison: no nulls, no empty maps or lists.

    Mirrors ``apiequality.Semantic.DeepEqual``, which treats nil and empty
    collections alike; the controller uses it to decide whether a ReplicaSet's
    template matches the Deployment's.
    """
    if isinstance(value, dict):
        out = {k: canonical(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not None and v not in ({}, [])}
    if isinstance(value, list):
        return [canonical(v) for v in value]
    return value


def canonical_json(value: Any) -> str:
    """Stable text form of :func:`canonical`, used for hashing templates."""
    return json.dumps(canonical(value), sort_keys=True, separators=(",", ":"))


def dig(obj: Any, *path: str) -> Any:
    """Follow ``path`` through nested dicts, returning ``None`` when absent."""
    current = obj
    for key in path:
        if not isinstance(current, dict):
            return None
        current = current.get(key)
    return current


def child(obj: JsonObject, key: str) -> JsonObject:
    """Return ``obj[key]`` as a dict, creating (or replacing a non-dict) first."""
    value = obj.get(key)
    if not isinstance(value, dict):
        value = {}
        obj[key] = value
    return value


def go_value(value: Any) -> str:
    """Render a JSON value like Go's ``%v`` of a decoded ``interface{}``.

    Used for messages such as ``map: map[image:nginx] does not contain declared
    merge key: name`` so clients that grep real error text also match ours.
    """
    if isinstance(value, dict):
        inner = " ".join(f"{k}:{go_value(value[k])}" for k in sorted(value))
        return f"map[{inner}]"
    if isinstance(value, list):
        return "[" + " ".join(go_value(v) for v in value) + "]"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return str(value)


def go_json_type(value: Any) -> str:
    """Name a JSON value's type the way ``encoding/json`` errors do."""
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    return "number"
