"""Parse ``/ops`` text into a typed ``CommandRequest`` for a runbook or a built-in.

The parser is pure and total: whatever the text, it returns a request or raises
``UsageError`` (checked with hypothesis), so the Slack layer can call it before the ack.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field

from commands.errors import UsageError
from commands.matching import Mismatch, match_usage
from commands.spec import CommandSpec
from commands.suggest import did_you_mean, known_list
from commands.tokenize import Token, tokenize
from commands.usage import Element, Group, Slot, Word, compile_usage, required_slots, slots
from commands.values import ParamValue, convert_value, default_env
from commands.vocabulary import Vocabulary


@dataclass(frozen=True)
class CommandRequest:
    """A command that parsed: its name and typed parameter values."""

    command: str
    params: dict[str, ParamValue] = field(default_factory=dict)
    builtin: bool = False
    subject: CommandRequest | None = None
    """For a command about another command (``can-i deploy checkout 1.4.2 to production``): that command, parsed."""

    @property
    def service(self) -> str | None:
        value = self.params.get("service")
        return value if isinstance(value, str) else None

    @property
    def env(self) -> str | None:
        value = self.params.get("env")
        return value if isinstance(value, str) else None


def parse_command(text: str, specs: Mapping[str, CommandSpec], vocabulary: Vocabulary) -> CommandRequest:
    """Parse ``text`` (without the ``/ops`` prefix) against the known commands."""
    tokens = tokenize(text)
    if not tokens:
        return CommandRequest(command="help", builtin=True)
    name = tokens[0].text.lower()
    spec = specs.get(name)
    if spec is None:
        raise _unknown_command(tokens[0].text, specs)
    if spec.wraps_command:
        return _wrapping(spec, tokens[1:], specs, vocabulary)
    return parse_arguments(spec, tokens[1:], vocabulary)


def _wrapping(spec: CommandSpec, tokens: list[Token], specs: Mapping[str, CommandSpec], vocabulary: Vocabulary) -> CommandRequest:
    """``can-i deploy checkout 1.4.2 to production``: the rest is a runbook command, parsed as one."""
    if not tokens:
        raise UsageError(f"`{spec.name}` needs a runbook command after it.", usage=spec.usage)
    inner_spec = specs.get(tokens[0].text.lower())
    if inner_spec is None:
        raise _unknown_command(tokens[0].text, {name: item for name, item in specs.items() if not item.builtin})
    if inner_spec.builtin:
        raise UsageError(f"`{spec.name}` asks about a runbook; `{inner_spec.name}` is a built-in command.", usage=spec.usage)
    inner = parse_arguments(inner_spec, tokens[1:], vocabulary)
    return CommandRequest(command=spec.name, params={"command": inner.command}, builtin=spec.builtin, subject=inner)


def parse_arguments(spec: CommandSpec, tokens: list[Token], vocabulary: Vocabulary) -> CommandRequest:
    """Bind ``key=value``/``--key value`` and positional words, then type-check every value."""
    elements = compile_usage(spec.usage)
    named, positional = split_named(spec, tokens)
    # A successful match has bound every required slot (or it was named), so nothing is missing here.
    keywords = command_words(spec, elements)
    bound, mismatch = match_usage(elements, bind_env_preposition(spec, elements, positional), frozenset(named), keywords)
    if bound is None:
        # The refusal quotes the words as typed (``in``, not the ``to`` it was read as).
        error = _mismatch_error(spec, positional, mismatch, frozenset(named), keywords)
        hint = _quoting_hint(tokens, positional, mismatch.position)
        raise UsageError(f"{error.user_message} {hint}", usage=spec.usage) if hint else error
    try:
        params = _typed(spec, {**bound, **named}, vocabulary, slots(elements))
    except UsageError as error:
        raise UsageError(error.user_message, usage=spec.usage) from None
    return CommandRequest(command=spec.name, params=params, builtin=spec.builtin)


ENV_PREPOSITIONS = ("in", "to")
"""People say ``deploy … in staging`` and ``restart … to staging`` whatever the usage line wrote."""


def bind_env_preposition(spec: CommandSpec, elements: tuple[Element, ...], tokens: list[Token]) -> list[Token]:
    """Read ``in``/``to`` as the usage's own word before ``{env}``, when the usage does not use it elsewhere."""
    written = _word_before_env(spec, elements)
    if written is None:
        return tokens
    literals = set(_literal_words(elements))
    swapped: list[Token] = []
    for token in tokens:
        word = token.text.lower()
        # ``written`` is itself one of the literals, so it is never replaced by itself.
        replaceable = not token.quoted and word in ENV_PREPOSITIONS and word not in literals
        swapped.append(Token(written) if replaceable else token)
    return swapped


def command_words(spec: CommandSpec, elements: tuple[Element, ...]) -> frozenset[str]:
    """The usage's own words, and ``in``/``to`` where either reads as the word before ``{env}``: never values unquoted."""
    words = set(_literal_words(elements))
    if _word_before_env(spec, elements) is not None:
        words.update(ENV_PREPOSITIONS)
    return frozenset(words)


def _word_before_env(spec: CommandSpec, elements: tuple[Element, ...]) -> str | None:
    flat = _flatten(elements)
    for previous, element in itertools.pairwise(flat):
        parameter = spec.parameters.get(element.name) if isinstance(element, Slot) else None
        if parameter is not None and parameter.type == "env" and isinstance(previous, Word) and previous.text in ENV_PREPOSITIONS:
            return previous.text
    return None


def _literal_words(elements: tuple[Element, ...]) -> list[str]:
    return [element.text for element in _flatten(elements) if isinstance(element, Word)]


def _flatten(elements: tuple[Element, ...]) -> list[Word | Slot]:
    flat: list[Word | Slot] = []
    for element in elements:
        flat.extend(_flatten(element.elements) if isinstance(element, Group) else [element])
    return flat


def split_named(spec: CommandSpec, tokens: list[Token]) -> tuple[dict[str, str], list[Token]]:
    """Separate ``key=value`` and ``--key value`` (for declared keys) from positional words."""
    named: dict[str, str] = {}
    positional: list[Token] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        key, value = _named_pair(spec, tokens, index)
        if key is None:
            positional.append(token)
            index += 1
            continue
        if key in named:
            raise UsageError(f"{key} is given twice.", usage=spec.usage)
        if value is None:
            raise UsageError(f"--{key} needs a value after it.", usage=spec.usage)
        named[key] = value
        index += 1 if "=" in token.text else 2
    return named, positional


def _named_pair(spec: CommandSpec, tokens: list[Token], index: int) -> tuple[str | None, str | None]:
    token = tokens[index]
    if token.quoted:
        return None, None
    text = token.text
    if text.startswith("--") and len(text) > 2:
        flag, equals, value = text[2:].partition("=")
        key = flag.replace("-", "_").lower()
        if equals:
            return _declared(spec, key), value
        if _usage_has_flag(spec, text):
            return None, None
        declared = _declared(spec, key)
        following = tokens[index + 1].text if index + 1 < len(tokens) else None
        return declared, following
    if "=" in text and not text.startswith("="):
        key, _, value = text.partition("=")
        return _declared(spec, key.lower()), value
    return None, None


def _usage_has_flag(spec: CommandSpec, flag: str) -> bool:
    """A flag the usage requires (``note {service} --reason {reason}``) is matched as a word in its place.

    One inside an optional part (``[--reason {reason}]``) is not found here (its word is ``[--reason``): it is
    read as a named value, which the matcher accepts anywhere by skipping the part whose slots are all named.
    """
    return flag.lower() in spec.usage.lower().split()


def _declared(spec: CommandSpec, key: str) -> str:
    if key in spec.parameters:
        return key
    suggestion = did_you_mean(key, spec.parameters)
    hint = f" Did you mean {suggestion}?" if suggestion else ""
    allowed = known_list(spec.parameters) if spec.parameters else "none"
    raise UsageError(f"{spec.name} has no parameter {key!r}.{hint} Parameters: {allowed}.", usage=spec.usage)


def _typed(spec: CommandSpec, raw: dict[str, str], vocabulary: Vocabulary, order: list[str]) -> dict[str, ParamValue]:
    """Every declared parameter's value, in usage order (then the rest), with the service first.

    The service comes first so ``env`` is checked against the service named, wherever the usage puts it.
    """
    values: dict[str, ParamValue] = {}
    service: str | None = None
    place = {name: index for index, name in enumerate(order)}
    names = sorted(spec.parameters, key=lambda name: (spec.parameters[name].type != "service", place.get(name, len(order))))
    for name in names:
        parameter = spec.parameters[name]
        if name in raw:
            value = convert_value(name, parameter, raw[name], vocabulary, service)
        elif parameter.type == "env":
            # ``default: "*"`` marks an optional env filter (history): absent means every env.
            value = None if parameter.default == "*" else default_env(parameter, vocabulary, service)
        else:
            value = parameter.default
        if parameter.type == "service" and isinstance(value, str):
            service = value
        values[name] = value
    return values


def _quoting_hint(tokens: list[Token], positional: list[Token], position: int) -> str | None:
    """``--reason db migration``: the stray words most likely belong to the named value before them."""
    if not 0 <= position < len(positional):
        return None
    stray = positional[position]
    index = next(i for i, token in enumerate(tokens) if token is stray)  # the very token, not an equal one
    if index == 0:
        return None
    previous = tokens[index - 1]
    rest = [stray.text]
    for token in tokens[index + 1 :]:
        if token.quoted or "=" in token.text or token.text.startswith("--"):
            break
        rest.append(token.text)
    if "=" in previous.text and not previous.quoted:
        key, _, value = previous.text.partition("=")
        return f'A value with spaces needs quotes: {key}="{" ".join([value, *rest])}".'
    if index >= 2 and tokens[index - 2].text.startswith("--") and "=" not in tokens[index - 2].text:
        return f'A value with spaces needs quotes: {tokens[index - 2].text} "{" ".join([previous.text, *rest])}".'
    return None


def _only_values(expected: set[str]) -> bool:
    """Whether a mismatch expected only values (``<version>``), no word of the command."""
    return all(item.startswith("<") for item in expected)


def _unknown_command(word: str, specs: Mapping[str, CommandSpec]) -> UsageError:
    suggestion = did_you_mean(word, specs)
    hint = f" Did you mean `{suggestion}`?" if suggestion else ""
    return UsageError(f"Unknown command {word!r}.{hint} Commands: {known_list(specs)}. Try `help`.")


def _mismatch_error(
    spec: CommandSpec, tokens: list[Token], mismatch: Mismatch, prebound: frozenset[str], keywords: frozenset[str]
) -> UsageError:
    needed = [slot for slot in required_slots(compile_usage(spec.usage)) if slot not in prebound]
    if len(tokens) < len(needed) and mismatch.position >= len(tokens):
        missing = needed[len(tokens) :]
        return UsageError(f"Missing {', '.join(missing)}.", usage=spec.usage)
    # Every failed attempt notes what it expected, so a mismatch has a position and something expected.
    position = mismatch.position
    expected = " or ".join(sorted(mismatch.expected))
    stray = tokens[position] if position < len(tokens) else None
    if stray is not None and not stray.quoted and stray.text.lower() in keywords and _only_values(mismatch.expected):
        names = ", ".join(sorted(name.strip("<>") for name in mismatch.expected))
        return UsageError(f"Missing {names} before {stray.text!r}.", usage=spec.usage)
    if position < len(tokens):
        return UsageError(f"Did not understand {tokens[position].text!r} here; expected {expected}.", usage=spec.usage)
    return UsageError(f"The command ended early; expected {expected}.", usage=spec.usage)
