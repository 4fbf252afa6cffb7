"""Help text generated from the command specs, so it can never drift from the grammar."""

from __future__ import annotations

from collections.abc import Mapping

from commands.errors import UsageError
from commands.spec import CommandSpec, ParameterLike
from commands.suggest import did_you_mean, known_list


def overview(specs: Mapping[str, CommandSpec], prefix: str = "/ops") -> list[str]:
    """One line per command: usage and what it does, runbooks first."""
    runbooks = sorted((spec for spec in specs.values() if not spec.builtin), key=lambda spec: spec.name)
    builtins = sorted((spec for spec in specs.values() if spec.builtin), key=lambda spec: spec.name)
    lines = ["*Runbooks*"]
    lines += [f"`{prefix} {spec.usage}` — {spec.description}" for spec in runbooks]
    lines += ["*Other commands*"]
    lines += [f"`{prefix} {spec.usage}` — {spec.description}" for spec in builtins]
    lines.append(f"`{prefix} help <command>` explains one command. Values can also be given as key=value.")
    return lines


def command_help(specs: Mapping[str, CommandSpec], name: str, prefix: str = "/ops") -> list[str]:
    """Usage, parameters with their types and limits, and examples for one command."""
    spec = specs.get(name.lower())
    if spec is None:
        suggestion = did_you_mean(name, specs)
        hint = f" Did you mean `{suggestion}`?" if suggestion else ""
        raise UsageError(f"There is no command {name!r}.{hint} Commands: {known_list(specs)}.")
    lines = [f"*{spec.name}* — {spec.description}", f"Usage: `{prefix} {spec.usage}`"]
    if spec.parameters:
        lines.append("Parameters:")
        for parameter_name, parameter in spec.parameters.items():
            lines.append(f"• `{parameter_name}` ({_describe_type(parameter)}){' — ' + parameter.help if parameter.help else ''}")
    if spec.examples:
        lines.append("Examples:")
        lines += [f"• `{prefix} {example}`" for example in spec.examples]
    return lines


def _describe_type(parameter: ParameterLike) -> str:
    parts: list[str] = [parameter.type]
    if parameter.min is not None or parameter.max is not None:
        parts.append(f"{'' if parameter.min is None else parameter.min}–{'' if parameter.max is None else parameter.max}")
    if parameter.choices:
        parts.append("one of " + ", ".join(parameter.choices))
    if parameter.default is not None and parameter.default != "*":
        parts.append(f"default {parameter.default}")
    return ", ".join(parts)
