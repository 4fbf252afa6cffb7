"""The registry of action names (``kubernetes.set_image``, ``ecs.deploy``, ``http.request``, plugins' own).

Built-in backends list their actions in their ``actions`` module (``ACTIONS`` and ``ROLLBACKS``),
named in ``BUILTIN_ACTION_MODULES``. Third-party packages add actions through the Python entry
point group ``opsbot.actions``: installing the package is enough, opsbot's code does not change
(docs/runbooks.md, "Writing an action"). The runbook loader and ``opsbot validate`` only ever ask
this registry. A plugin that cannot be imported, that breaks the action contract, or whose action
name is already taken is a *problem* of the registry, reported by ``opsbot validate`` and at
startup naming the package, never a traceback.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import Any, get_args

from pydantic import BaseModel

from bot.catalog.actions import Action, ActionArgs, RollbackSupport
from bot.catalog.config import TargetKind

ENTRY_POINT_GROUP = "opsbot.actions"
BUILTIN_ACTION_MODULES = (
    "bot.backends.generic",
    "bot.backends.http_request",
    "bot.backends.kubernetes.actions",
    "bot.backends.aws.actions",
)
BUILT_IN = "opsbot (built in)"
ACTION_NAME = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class ActionOrigin:
    """Where an action came from: opsbot itself, or an installed distribution's entry point."""

    package: str
    entry_point: str = ""

    def describe(self) -> str:
        return self.package if not self.entry_point else f"plugin {self.package} (entry point {self.entry_point})"


BUILT_IN_ORIGIN = ActionOrigin(BUILT_IN)


class ActionRegistry:
    """Name → action class (and where it came from), target kind → rollback support, and what went wrong loading them."""

    def __init__(self) -> None:
        self._actions: dict[str, type[Action[Any]]] = {}
        self._origins: dict[str, ActionOrigin] = {}
        self._rollbacks: dict[TargetKind, RollbackSupport] = {}
        self.problems: list[str] = []

    def register(self, action: type[Action[Any]], origin: ActionOrigin = BUILT_IN_ORIGIN) -> None:
        """Add ``action``; a second action of the same name is refused (``ValueError`` naming both origins)."""
        if action.name in self._actions:
            first = self._origins[action.name]
            raise ValueError(
                f"action {action.name!r} from {origin.describe()} clashes with the action of the same name from "
                f"{first.describe()}; rename one of them (plugin actions are named <package>.<verb>)"
            )
        self._actions[action.name] = action
        self._origins[action.name] = origin

    def register_rollback(self, support: RollbackSupport) -> None:
        self._rollbacks[support.target_kind] = support

    def get(self, name: str) -> type[Action[Any]] | None:
        return self._actions.get(name)

    def origin(self, name: str) -> ActionOrigin | None:
        return self._origins.get(name)

    def create(self, name: str) -> Action[Any]:
        action = self._actions.get(name)
        if action is None:
            raise KeyError(name)
        return action()

    def names(self) -> list[str]:
        return sorted(self._actions)

    def actions(self) -> list[type[Action[Any]]]:
        return [self._actions[name] for name in self.names()]

    def rollback_for(self, kind: TargetKind) -> RollbackSupport | None:
        return self._rollbacks.get(kind)

    def applies_to(self, name: str, kind: TargetKind) -> bool:
        """Whether a step with this action runs for a target of ``kind``."""
        action = self._actions.get(name)
        return action is not None and action.target_kind in (None, kind)


def build_registry(modules: Iterable[str] = BUILTIN_ACTION_MODULES, *, plugins: bool = True) -> ActionRegistry:
    """Opsbot's own actions, then every installed plugin's; plugin problems are collected in ``registry.problems``."""
    registry = ActionRegistry()
    for module_name in modules:
        _register_module(registry, importlib.import_module(module_name), BUILT_IN_ORIGIN)
    if plugins:
        for entry_point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda point: point.name):
            _register_plugin(registry, entry_point)
    return registry


def contract_problems(action: Any) -> list[str]:
    """What makes ``action`` unusable as a runbook action (empty when it follows the contract)."""
    if not isinstance(action, type) or not issubclass(action, Action):
        return [f"{action!r} is not a subclass of bot.catalog.actions.Action"]
    problems: list[str] = []
    name = getattr(action, "name", None)
    if not isinstance(name, str) or not ACTION_NAME.match(name):
        problems.append(f"{action.__name__}.name must look like package.verb (lower case), got {name!r}")
    args_model = getattr(action, "args_model", None)
    if not (isinstance(args_model, type) and issubclass(args_model, BaseModel) and issubclass(args_model, ActionArgs)):
        problems.append(f"{action.__name__}.args_model must be a subclass of bot.catalog.actions.ActionArgs")
    kind = getattr(action, "target_kind", "missing")
    if kind is not None and kind not in get_args(TargetKind):
        problems.append(
            f"{action.__name__}.target_kind must be None (any target) or one of {', '.join(get_args(TargetKind))}, got {kind!r}"
        )
    if not isinstance(getattr(action, "mutating", None), bool):
        problems.append(f"{action.__name__}.mutating must be True or False")
    if not isinstance(getattr(action, "summary", None), str):
        problems.append(f"{action.__name__}.summary must be a one-line description")
    if getattr(action, "__abstractmethods__", None):
        problems.append(f"{action.__name__} does not implement {', '.join(sorted(action.__abstractmethods__))}")
    return problems


def _register_module(registry: ActionRegistry, module: ModuleType, origin: ActionOrigin) -> None:
    for action in getattr(module, "ACTIONS", []):
        registry.register(action, origin)
    for support in getattr(module, "ROLLBACKS", []):
        registry.register_rollback(support)


def _register_plugin(registry: ActionRegistry, entry_point: EntryPoint) -> None:
    package = entry_point.dist.name if entry_point.dist is not None else "an unknown package"
    origin = ActionOrigin(package, f"{entry_point.name} = {entry_point.value}")
    try:
        loaded = entry_point.load()
    except Exception as error:  # noqa: BLE001 - any import failure of third-party code becomes a readable problem
        registry.problems.append(f"{origin.describe()} cannot be loaded: {type(error).__name__}: {error}")
        return
    actions = _actions_of(loaded)
    if actions is None:
        registry.problems.append(
            f"{origin.describe()} must point at a module with an ACTIONS list, an Action subclass, or a list of them; got {loaded!r}"
        )
        return
    for action in actions:
        problems = contract_problems(action)
        if problems:
            registry.problems.extend(f"{origin.describe()}: {problem}" for problem in problems)
            continue
        try:
            registry.register(action, origin)
        except ValueError as clash:
            registry.problems.append(str(clash))


def _actions_of(loaded: object) -> list[Any] | None:
    if isinstance(loaded, ModuleType):
        listed = getattr(loaded, "ACTIONS", None)
        return list(listed) if isinstance(listed, list | tuple) else None
    if isinstance(loaded, type):
        return [loaded]
    if isinstance(loaded, list | tuple):
        return list(loaded)
    return None
