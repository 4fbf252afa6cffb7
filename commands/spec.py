"""What the grammar needs to know about a command, whether a runbook or a built-in.

Plain data: ``bot`` builds these from runbooks and from its built-ins registry, so the
grammar never imports the application.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

ParameterType = Literal["service", "env", "string", "int", "duration", "choice", "version"]
"""``version`` reads like ``string`` (with its ``pattern``); forms offer it with suggestions from the target's history."""


class ParameterLike(Protocol):
    """A typed parameter as the grammar reads it (a runbook's ``ParameterSpec`` is one)."""

    @property
    def type(self) -> ParameterType: ...
    @property
    def help(self) -> str: ...
    @property
    def default(self) -> str | int | None: ...
    @property
    def pattern(self) -> str | None: ...
    @property
    def min(self) -> int | None: ...
    @property
    def max(self) -> int | None: ...
    @property
    def choices(self) -> list[str] | None: ...


@dataclass(frozen=True)
class Param:
    """A parameter declared in code (the built-ins use these)."""

    type: ParameterType = "string"
    help: str = ""
    default: str | int | None = None
    pattern: str | None = None
    min: int | None = None
    max: int | None = None
    choices: list[str] | None = None


@dataclass(frozen=True)
class CommandSpec:
    """A command's name, usage line and typed parameters."""

    name: str
    description: str
    usage: str
    parameters: Mapping[str, ParameterLike] = field(default_factory=dict)
    examples: tuple[str, ...] = ()
    builtin: bool = False
    wraps_command: bool = False
    """The words after the name are another (runbook) command, parsed as such (``can-i``)."""
