"""What the grammar needs to know about a command, whether a runbook or a built-in."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.runbooks.models import ParameterSpec, Runbook


@dataclass(frozen=True)
class CommandSpec:
    """A command's name, usage line and typed parameters."""

    name: str
    description: str
    usage: str
    parameters: dict[str, ParameterSpec] = field(default_factory=dict)
    examples: tuple[str, ...] = ()
    builtin: bool = False

    @classmethod
    def from_runbook(cls, runbook: Runbook) -> CommandSpec:
        return cls(
            name=runbook.name,
            description=runbook.description,
            usage=runbook.usage,
            parameters=dict(runbook.parameters),
            examples=tuple(runbook.examples),
        )
