"""Where the catalog meets the grammar: runbooks as command specs, the catalog's names, and parsing.

``commands`` is a pure package that knows nothing of opsbot; this module feeds it plain data
and turns its ``UsageError`` into opsbot's, so front ends catch one error hierarchy.
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.catalog.config import OpsbotConfig
from bot.catalog.runbooks import Runbook
from bot.errors import UsageError
from commands import errors as grammar_errors
from commands.help import command_help, overview
from commands.parser import CommandRequest, parse_command
from commands.spec import CommandSpec
from commands.vocabulary import Vocabulary


def vocabulary_of(config: OpsbotConfig) -> Vocabulary:
    """The service and env names commands may use, in catalog order."""
    return Vocabulary(
        environments={name: tuple(service.environments) for name, service in config.services.items()},
        default_envs={name: service.default_env for name, service in config.services.items() if service.default_env},
    )


def command_spec_of(runbook: Runbook) -> CommandSpec:
    return CommandSpec(
        name=runbook.name,
        description=runbook.description,
        usage=runbook.usage,
        parameters=dict(runbook.parameters),
        examples=tuple(runbook.examples),
    )


def parse(text: str, commands: Mapping[str, CommandSpec], names: Vocabulary) -> CommandRequest:
    """Pure parse for the ack path; raises opsbot's ``UsageError`` only."""
    try:
        return parse_command(text, commands, names)
    except grammar_errors.UsageError as error:
        raise UsageError(error.user_message, usage=error.usage) from None


def help_lines(commands: Mapping[str, CommandSpec], name: str | None) -> list[str]:
    """``help`` or ``help <command>``; an unknown command is a ``UsageError`` with suggestions."""
    if not name:
        return overview(commands)
    try:
        return command_help(commands, name)
    except grammar_errors.UsageError as error:
        raise UsageError(error.user_message, usage=error.usage) from None
