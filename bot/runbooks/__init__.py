"""Runbooks: YAML files that name a command's usage, its typed parameters and its steps."""

from bot.runbooks.models import OnFailure, ParameterSpec, Runbook, StepSpec

__all__ = ["OnFailure", "ParameterSpec", "Runbook", "StepSpec"]
