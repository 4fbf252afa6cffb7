"""Read a runbook command that leaves required parameters out: what was given, and what a form must ask for.

``deploy checkout`` is a usage error for the parser, but a front end with forms (a Slack modal,
the shell's prompts) can ask for the missing ``version`` instead. Which words were meant for
which parameters is decided the way the parser would: the usage line matched with the last
required slots taken as given (people type in order and stop early), and only a binding
whose given values all type-check counts. A word that fits nowhere (``deploy chekout``: no
service by that name) is not a form to finish but a typo, and keeps the parser's "did you
mean checkout?".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from commands.errors import UsageError
from commands.matching import match_usage
from commands.parser import bind_env_preposition, split_named
from commands.spec import CommandSpec
from commands.tokenize import tokenize
from commands.usage import compile_usage, required_slots
from commands.values import convert_value
from commands.vocabulary import Vocabulary


@dataclass(frozen=True)
class PartialCommand:
    """A runbook command with its given values (as typed) and the required parameters it lacks, in usage order."""

    command: str
    given: dict[str, str]
    missing: tuple[str, ...]


def bind_partially(text: str, specs: Mapping[str, CommandSpec], vocabulary: Vocabulary) -> PartialCommand | None:
    """The partial reading of ``text``, or None when it is not a runbook command lacking only required values.

    None also for text that parses completely: the caller asks this only after a usage error.
    """
    try:
        tokens = tokenize(text)
    except UsageError:
        return None
    spec = specs.get(tokens[0].text.lower()) if tokens else None
    if spec is None or spec.builtin or spec.wraps_command:
        return None
    elements = compile_usage(spec.usage)
    try:
        named, positional = split_named(spec, tokens[1:])
    except UsageError:
        return None
    positional = bind_env_preposition(spec, elements, positional)
    required = [slot for slot in required_slots(elements) if slot not in named]
    for size in range(1, len(required) + 1):
        missing = tuple(required[-size:])
        bound, _ = match_usage(elements, positional, frozenset(named) | frozenset(missing))
        if bound is None:
            continue
        given = {**bound, **named}
        return PartialCommand(spec.name, given, missing) if _all_valid(spec, given, vocabulary) else None
    return None


def _all_valid(spec: CommandSpec, given: Mapping[str, str], vocabulary: Vocabulary) -> bool:
    """Whether every given value converts (the service first: an env is checked against it)."""
    service_name = next((name for name in given if spec.parameters.get(name) and spec.parameters[name].type == "service"), None)
    service = given.get(service_name) if service_name else None
    try:
        for name, raw in sorted(given.items(), key=lambda item: item[0] != service_name):
            parameter = spec.parameters.get(name)
            if parameter is not None:
                converted = convert_value(name, parameter, raw, vocabulary, service)
                service = converted if name == service_name and isinstance(converted, str) else service
    except UsageError:
        return False
    return True


def command_text(command: str, values: Mapping[str, str]) -> str:
    """``deploy service=checkout version=1.4.2 env=production``: values from a form as the text the parser reads.

    A form's answers go through the very parser typed text does (same checks, same typed
    values, same params hash); ``key=value`` keeps each answer in its field whatever the usage
    line's word order. Raises ``UsageError`` for a value no quoting can carry.
    """
    words = [command]
    for name, value in values.items():
        if value == "":
            continue
        words.append(f"{name}={_quoted(name, value)}")
    return " ".join(words)


def _quoted(name: str, value: str) -> str:
    if not any(character.isspace() or character in "\"'" for character in value):
        return value
    if '"' not in value:
        return f'"{value}"'
    if "'" not in value:
        return f"'{value}'"
    raise UsageError(f"{name} cannot contain both ' and \" quotes.")
