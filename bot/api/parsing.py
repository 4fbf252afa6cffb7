"""A request body to the same typed ``CommandRequest`` a typed ``/ops`` command becomes.

``text`` is tokenized as a person's words; ``args`` become ``key=value`` words (never joined
into one string, so a value with spaces or ``=`` stays one value). Either way the runbook's own
usage and parameter types check them, with the same messages a person would get.
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.api.models import RunbookRequest
from commands.errors import UsageError
from commands.parser import CommandRequest, parse_arguments
from commands.spec import CommandSpec
from commands.suggest import did_you_mean
from commands.tokenize import Token, tokenize
from commands.vocabulary import Vocabulary


def command_of(body: RunbookRequest, commands: Mapping[str, CommandSpec], vocabulary: Vocabulary) -> CommandRequest:
    """The parsed runbook command; raises ``UsageError`` with the runbook's usage line."""
    spec = commands.get(body.runbook)
    if spec is None or spec.builtin:
        runbooks = [name for name, item in commands.items() if not item.builtin]
        suggestion = did_you_mean(body.runbook, runbooks)
        hint = f" Did you mean {suggestion}?" if suggestion else f" Runbooks: {', '.join(sorted(runbooks))}."
        raise UsageError(f"There is no runbook {body.runbook!r}.{hint}")
    return parse_arguments(spec, _tokens(body), vocabulary)


def command_text(body: RunbookRequest) -> str:
    """What the audit shows as the words asked for, as a person would have typed them."""
    if body.text is not None:
        return f"{body.runbook} {body.text}".strip()
    return " ".join([body.runbook, *(f"{key}={_word(value)}" for key, value in (body.args or {}).items())])


def _tokens(body: RunbookRequest) -> list[Token]:
    if body.text is not None:
        return tokenize(body.text)
    return [Token(f"{key}={_word(value)}") for key, value in (body.args or {}).items()]


def _word(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
