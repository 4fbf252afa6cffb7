"""The runbook schema: what a team may write in ``runbooks/*.yaml``.

Everything is ``extra="forbid"``: a misspelt key is an error in ``opsbot validate``, not a
silently ignored setting on a production deploy.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bot.catalog.config import ApprovalRule
from bot.catalog.durations import Duration
from commands.spec import ParameterType

TEMPLATE_REFERENCE = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


class RunbookModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ParameterSpec(RunbookModel):
    """One typed parameter. ``service`` and ``env`` are checked against the catalog."""

    type: ParameterType = "string"
    help: str = ""
    default: str | int | None = None
    pattern: str | None = None
    min: int | None = None
    max: int | None = None
    choices: list[str] | None = None

    @field_validator("pattern")
    @classmethod
    def _pattern_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(f"pattern does not compile: {error}") from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ParameterSpec:
        if self.min is not None and self.max is not None and self.max < self.min:
            raise ValueError(f"max ({self.max}) is below min ({self.min})")
        if (self.min is not None or self.max is not None) and self.type != "int":
            raise ValueError("min/max apply only to type: int")
        if self.type == "choice" and not self.choices:
            raise ValueError("type: choice needs a non-empty choices list")
        if self.pattern is not None and self.type not in ("string", "version"):
            raise ValueError("pattern applies only to type: string or version")
        return self


class StepSpec(RunbookModel):
    """One step: a registered action and its arguments (``{param}`` templates allowed)."""

    name: str | None = None
    action: str = Field(pattern=r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
    args: dict[str, Any] = Field(default_factory=dict)
    timeout: Duration | None = None

    @property
    def title(self) -> str:
        return self.name or self.action

    def template_references(self) -> set[str]:
        """Parameter names used as ``{name}`` anywhere in the arguments (nested mappings and lists included)."""
        return _references(self.args)


def _references(value: Any) -> set[str]:
    if isinstance(value, str):
        return set(TEMPLATE_REFERENCE.findall(value))
    if isinstance(value, dict):
        return set().union(*(_references(item) for item in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_references(item) for item in value)) if value else set()
    return set()


OnFailure = Literal["rollback", "none"]


class Runbook(RunbookModel):
    """A command people can run: ``/ops <name> <usage>``."""

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,30}$")
    description: str = Field(min_length=1)
    usage: str = Field(min_length=1)
    parameters: dict[str, ParameterSpec] = Field(default_factory=dict)
    steps: list[StepSpec] = Field(min_length=1)
    approval: dict[str, ApprovalRule] = Field(default_factory=dict)
    on_failure: OnFailure = "none"
    timeout: Duration = timedelta(minutes=30)
    examples: list[str] = Field(default_factory=list)

    @field_validator("parameters")
    @classmethod
    def _parameter_names(cls, value: dict[str, ParameterSpec]) -> dict[str, ParameterSpec]:
        for name in value:
            if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
                raise ValueError(f"parameter name {name!r} must be lower_snake_case")
        return value

    @model_validator(mode="after")
    def _usage_starts_with_name(self) -> Runbook:
        first = self.usage.split()[0] if self.usage.split() else ""
        if first != self.name:
            raise ValueError(f"usage must start with the runbook name {self.name!r}; it starts with {first!r}")
        return self

    def approval_for(self, env: str) -> ApprovalRule | None:
        """The runbook's own minimum approval for ``env`` (``"*"`` is the fallback)."""
        return self.approval.get(env) or self.approval.get("*")

    def parameter_of_type(self, kind: ParameterType) -> str | None:
        for name, spec in self.parameters.items():
            if spec.type == kind:
                return name
        return None
