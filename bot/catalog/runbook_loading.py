"""Validate one runbook piece by piece, so one mistake never hides another.

pydantic stops at the first level that fails: a bad step hides the usage check, and a
model validator never runs when a field fails. ``opsbot validate`` must list every problem
in one run, so each parameter, step and approval rule is validated on its own, the rest of
the runbook against valid stand-ins, and what failed is remembered as *broken* so later
cross-checks skip it instead of reporting follow-on errors.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from bot.catalog.config import ApprovalRule
from bot.catalog.runbooks import ParameterSpec, Runbook, StepSpec
from bot.catalog.schema_messages import schema_message
from bot.catalog.yaml_lines import YamlDocument
from commands.suggest import did_you_mean

PieceT = TypeVar("PieceT", bound=BaseModel)
Location = list[str | int]
Problem = tuple[Location, str]

NAME_PATTERN = r"[a-z][a-z0-9-]{0,30}"
_STAND_IN_STEP: dict[str, Any] = {"action": "opsbot.stand_in"}
_PLACEHOLDER_STEP = StepSpec.model_construct(name=None, action="", args={}, timeout=None)


@dataclass(frozen=True)
class RunbookParts:
    """A runbook as far as it validated: broken pieces are named, never guessed."""

    runbook: Runbook | None
    problems: list[Problem]
    broken: frozenset[str] = frozenset()
    declared_parameters: frozenset[str] = field(default_factory=frozenset)
    raw_name: str | None = None


def validate_runbook(document: YamlDocument, action_names: Sequence[str] = ()) -> RunbookParts:
    """Every schema problem of the runbook in ``document`` (a mapping) and what still validated."""
    data: dict[Any, Any] = document.data
    problems: list[Problem] = []
    broken: set[str] = set()
    top = dict(data)
    parameters: dict[str, ParameterSpec] = {}
    raw_parameters = data.get("parameters")
    if isinstance(raw_parameters, dict):
        for name, raw in raw_parameters.items():
            spec = _piece(ParameterSpec, raw, ["parameters", name], problems)
            if spec is None:
                broken.add(f"parameters.{name}")
            else:
                parameters[str(name)] = spec
        top["parameters"] = {name: {} for name in raw_parameters}
    steps: list[StepSpec] = []
    raw_steps = data.get("steps")
    if isinstance(raw_steps, list) and raw_steps:
        for index, raw in enumerate(raw_steps):
            step = _piece(StepSpec, raw, ["steps", index], problems, _action_hint(raw, action_names))
            if step is None:
                broken.add(f"steps[{index}]")
            steps.append(step or _PLACEHOLDER_STEP)
        top["steps"] = [_STAND_IN_STEP] * len(raw_steps)
    approval: dict[str, ApprovalRule] = {}
    raw_approval = data.get("approval")
    if isinstance(raw_approval, dict):
        for env, raw in raw_approval.items():
            rule = _piece(ApprovalRule, raw, ["approval", env], problems)
            if rule is None:
                broken.add(f"approval.{env}")
            else:
                approval[str(env)] = rule
        top["approval"] = {env: {"count": 0} for env in raw_approval}
    skeleton = _skeleton(top, problems, broken)
    runbook = None
    if skeleton is not None:
        runbook = skeleton.model_copy(update={"parameters": parameters, "steps": steps, "approval": approval})
    raw_name = data.get("name")
    declared = frozenset(str(name) for name in raw_parameters) if isinstance(raw_parameters, dict) else frozenset()
    return RunbookParts(runbook, problems, frozenset(broken), declared, raw_name if isinstance(raw_name, str) else None)


def keys_at(model: type[BaseModel], location: Location) -> list[str]:
    """Keys allowed in the mapping that holds ``location``'s last part (for unknown-key messages)."""
    return _keys_at(model, location)


def _piece(model: type[PieceT], raw: object, where: Location, problems: list[Problem], action_hint: str = "") -> PieceT | None:
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        for item in error.errors(include_url=False):
            location = [part for part in item["loc"] if _is_field(part)]
            message = schema_message(item, _keys_at(model, location))
            if location == ["action"] and action_hint:
                message += action_hint
            problems.append(([*where, *location], message))
        return None


def _action_hint(raw: object, action_names: Sequence[str]) -> str:
    """``; did you mean kubernetes.wait_rollout?`` for ``Kubernetes.Wait``: only registered actions are suggested."""
    given = raw.get("action") if isinstance(raw, dict) else None
    if not isinstance(given, str) or not action_names:
        return ""
    suggestion = did_you_mean(given.lower(), action_names)
    return f"; did you mean {suggestion}?" if suggestion else ""


def _skeleton(top: dict[Any, Any], problems: list[Problem], broken: set[str]) -> Runbook | None:
    """The runbook's own fields and cross-field rules, checked against valid stand-ins for the pieces."""
    try:
        return Runbook.model_validate(top)
    except ValidationError as error:
        for item in error.errors(include_url=False):
            location = [part for part in item["loc"] if _is_field(part)]
            problems.append((location, schema_message(item, _keys_at(Runbook, location))))
            # A failed usage check (no location) breaks the usage line, not the name.
            broken.add(str(location[0]) if location else "usage")
    retry = {key: value for key, value in top.items() if key not in broken and key in Runbook.model_fields}
    name = retry.get("name") if "name" not in broken else None
    if not isinstance(name, str) or not re.fullmatch(NAME_PATTERN, name):
        # The usage line's first word is the name the author meant; keep checking the usage with it.
        usage = retry.get("usage")
        first = usage.split()[0] if isinstance(usage, str) and usage.split() else ""
        name = first if re.fullmatch(NAME_PATTERN, first) else "broken"
        retry["name"] = name
    retry.setdefault("description", "-")
    retry.setdefault("steps", [_STAND_IN_STEP])
    if "usage" in broken or "usage" not in retry:
        retry["usage"] = name
    try:
        return Runbook.model_validate(retry)
    except ValidationError:
        return None


def _keys_at(model: type[BaseModel], location: Location) -> list[str]:
    """Keys allowed in the mapping that holds ``location``'s last part (for unknown-key messages)."""
    annotation: Any = model
    for part in location[:-1]:
        current = _model_in(annotation, containers=False)
        if current is not None and isinstance(part, str) and part in current.model_fields:
            annotation = current.model_fields[part].annotation
        else:
            annotation = _item_type(annotation)  # a list index or a mapping key: into the items
    found = _model_in(annotation, containers=False)
    return list(found.model_fields) if found is not None else []


def _model_in(annotation: Any, *, containers: bool) -> type[BaseModel] | None:
    """The model inside ``Model`` or ``Model | None`` (and inside lists and mappings when asked)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = getattr(annotation, "__origin__", None)
    if origin in (list, dict) and not containers:
        return None
    for argument in getattr(annotation, "__args__", ()):
        found = _model_in(argument, containers=containers)
        if found is not None:
            return found
    return None


def _item_type(annotation: Any) -> Any:
    origin = getattr(annotation, "__origin__", None)
    arguments: tuple[Any, ...] = tuple(getattr(annotation, "__args__", ()))
    if origin in (list, dict) and arguments:
        return arguments[-1]
    for argument in arguments:
        if getattr(argument, "__origin__", None) in (list, dict):
            return _item_type(argument)
    return None


def _is_field(part: object) -> bool:
    """Drop pydantic's validator tags (``function-after[...]``) from error locations."""
    if isinstance(part, int):
        return True
    return isinstance(part, str) and "[" not in part and "(" not in part
