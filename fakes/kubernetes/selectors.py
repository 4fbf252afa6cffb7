"""Label and field selectors: parsing the query-string grammar and matching.

Clients narrow lists with ``labelSelector=app=checkout,tier!=db`` or the
set-based ``env in (prod,staging)``; Deployments and ReplicaSets carry the
structured ``LabelSelector`` form. Both end up as :class:`Requirement` lists.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fakes.kubernetes.json_values import JsonObject, dig

_SET_RE = re.compile(r"^\s*(!?)\s*([^\s!=(),]+)\s*(?:\s(in|notin)\s*\(([^)]*)\))?\s*$")
_EQ_RE = re.compile(r"^\s*([^\s!=(),]+)\s*(==|=|!=)\s*([^\s!=(),]*)\s*$")


class SelectorError(ValueError):
    """A selector string that the apiserver would reject with 400."""


@dataclass(frozen=True)
class Requirement:
    """One clause of a selector, e.g. ``app=checkout`` or ``!canary``."""

    key: str
    operator: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether a label set satisfies this clause."""
        present = self.key in labels
        value = labels.get(self.key)
        if self.operator in ("=", "in"):
            return present and value in self.values
        if self.operator in ("!=", "notin"):
            return not present or value not in self.values
        if self.operator == "exists":
            return present
        return not present

    def __str__(self) -> str:
        if self.operator == "exists":
            return self.key
        if self.operator == "!exists":
            return f"!{self.key}"
        if self.operator in ("=", "!="):
            return f"{self.key}{self.operator}{self.values[0]}"
        return f"{self.key} {self.operator} ({','.join(sorted(self.values))})"


def _split_clauses(text: str) -> list[str]:
    clauses: list[str] = []
    depth, start = 0, 0
    for position, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            clauses.append(text[start:position])
            start = position + 1
    clauses.append(text[start:])
    return [c for c in clauses if c.strip()]


def parse_label_selector(text: str | None) -> list[Requirement]:
    """Parse the ``labelSelector`` query grammar (equality and set-based)."""
    if not text or not text.strip():
        return []
    requirements: list[Requirement] = []
    for clause in _split_clauses(text):
        equality = _EQ_RE.match(clause)
        if equality:
            operator = "!=" if equality.group(2) == "!=" else "="
            requirements.append(Requirement(equality.group(1), operator, (equality.group(3),)))
            continue
        set_based = _SET_RE.match(clause)
        if not set_based:
            raise SelectorError(f"unable to parse requirement: invalid label selector {clause.strip()!r}")
        negated, key, operator, raw_values = set_based.groups()
        if operator:
            if negated:
                raise SelectorError(f"unable to parse requirement: unexpected '!' in {clause.strip()!r}")
            values = tuple(v.strip() for v in raw_values.split(",") if v.strip())
            requirements.append(Requirement(key, operator, values))
        else:
            requirements.append(Requirement(key, "!exists" if negated else "exists"))
    return requirements


def requirements_from_label_selector(selector: Mapping[str, Any] | None) -> list[Requirement]:
    """Convert a structured ``LabelSelector`` (matchLabels + matchExpressions)."""
    if not selector:
        return []
    requirements = [Requirement(k, "=", (str(v),)) for k, v in (selector.get("matchLabels") or {}).items()]
    operators = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}
    for expression in selector.get("matchExpressions") or []:
        operator = operators.get(str(expression.get("operator")), "in")
        requirements.append(Requirement(str(expression.get("key")), operator, tuple(expression.get("values") or ())))
    return requirements


def matches(requirements: Sequence[Requirement], labels: Mapping[str, str] | None) -> bool:
    """Whether every requirement holds for ``labels`` (empty selects all)."""
    actual = labels or {}
    return all(r.matches(actual) for r in requirements)


def selector_string(selector: Mapping[str, Any] | None) -> str:
    """Format a ``LabelSelector`` like ``metav1.FormatLabelSelector`` does."""
    requirements = requirements_from_label_selector(selector)
    return ",".join(str(r) for r in sorted(requirements, key=lambda r: r.key))


_FIELD_PATHS: dict[str, tuple[str, ...]] = {
    "metadata.name": ("metadata", "name"),
    "metadata.namespace": ("metadata", "namespace"),
    "status.phase": ("status", "phase"),
    "spec.nodeName": ("spec", "nodeName"),
}


@dataclass(frozen=True)
class FieldRequirement:
    """One ``fieldSelector`` clause such as ``metadata.name=checkout``."""

    path: tuple[str, ...]
    equal: bool
    value: str

    def matches(self, obj: JsonObject) -> bool:
        """Whether the object's field value satisfies this clause."""
        actual = dig(obj, *self.path)
        same = (actual or "") == self.value
        return same if self.equal else not same


def parse_field_selector(text: str | None) -> list[FieldRequirement]:
    """Parse a ``fieldSelector``; only the commonly indexed fields are known."""
    if not text or not text.strip():
        return []
    requirements: list[FieldRequirement] = []
    for clause in text.split(","):
        match = _EQ_RE.match(clause)
        if not match:
            raise SelectorError(f"invalid selector: '{clause.strip()}'; can't understand '{clause.strip()}'")
        name, operator, value = match.groups()
        if name not in _FIELD_PATHS:
            raise SelectorError(f"field label not supported: {name}")
        requirements.append(FieldRequirement(_FIELD_PATHS[name], operator != "!=", value))
    return requirements
