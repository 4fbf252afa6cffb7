"""Runbook actions: the named steps a runbook may use, and the registry that finds them."""

from bot.actions.base import Action, Change, RollbackSupport, StepContext, StepResult
from bot.actions.registry import ActionRegistry, build_registry

__all__ = [
    "Action",
    "ActionRegistry",
    "Change",
    "RollbackSupport",
    "StepContext",
    "StepResult",
    "build_registry",
]
