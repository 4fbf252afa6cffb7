"""The registry of action names (``kubernetes.set_image``, ``ecs.deploy``, …).

A backend adds actions by listing them in its ``actions`` module (``ACTIONS`` and
``ROLLBACKS``) and by being named in ``BACKEND_ACTION_MODULES``; the runbook loader and
the validator only ever ask this registry, so they never change when a backend is added.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import Any

from bot.catalog.actions import Action, RollbackSupport
from bot.catalog.config import TargetKind

BACKEND_ACTION_MODULES = (
    "bot.backends.generic",
    "bot.backends.kubernetes.actions",
    "bot.backends.aws.actions",
    "bot.backends.gitops.actions",
)


class ActionRegistry:
    """Name → action class, and target kind → rollback support."""

    def __init__(self) -> None:
        self._actions: dict[str, type[Action[Any]]] = {}
        self._rollbacks: dict[TargetKind, RollbackSupport] = {}

    def register(self, action: type[Action[Any]]) -> None:
        if action.name in self._actions:
            raise ValueError(f"action {action.name!r} is registered twice")
        self._actions[action.name] = action

    def register_rollback(self, support: RollbackSupport) -> None:
        self._rollbacks[support.target_kind] = support

    def get(self, name: str) -> type[Action[Any]] | None:
        return self._actions.get(name)

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


def build_registry(modules: Iterable[str] = BACKEND_ACTION_MODULES) -> ActionRegistry:
    """Import each backend's action module and register what it lists."""
    registry = ActionRegistry()
    for module_name in modules:
        module = importlib.import_module(module_name)
        for action in getattr(module, "ACTIONS", []):
            registry.register(action)
        for support in getattr(module, "ROLLBACKS", []):
            registry.register_rollback(support)
    return registry
