"""Runbook ``examples:``: checked against the runbook's own usage, shown with the catalog's names.

The shipped runbooks are examples written for the example catalog (``checkout``,
``production``); a team's catalog has other names. So validation checks an example's shape
and values (any service or env word is accepted), and help rewrites the service and env of
each example to ones the reader's catalog really has.
"""

from __future__ import annotations

import re

from commands.errors import UsageError
from commands.parser import CommandRequest, parse_command
from commands.spec import CommandSpec
from commands.tokenize import tokenize
from commands.vocabulary import Vocabulary


def example_problem(spec: CommandSpec, example: str, vocabulary: Vocabulary) -> str | None:
    """Why ``example`` does not parse against ``spec``'s usage, or None when it does."""
    try:
        request = _parse_leniently(spec, example, vocabulary)
    except UsageError as error:
        return f"{example!r} does not match the usage `{spec.usage}`: {error.user_message}"
    if request.command != spec.name:
        return f"{example!r} runs {request.command!r}, not {spec.name!r}; an example starts with the runbook's name"
    return None


def catalog_examples(spec: CommandSpec, vocabulary: Vocabulary) -> tuple[str, ...]:
    """The examples with services and envs the catalog does not know replaced by ones it does."""
    if not vocabulary.services:
        return spec.examples
    rewritten: list[str] = []
    for example in spec.examples:
        try:
            request = _parse_leniently(spec, example, vocabulary)
        except UsageError:
            continue
        text = _rewrite(example, request, spec, vocabulary)
        if text not in rewritten:
            rewritten.append(text)
    return tuple(rewritten)


def _parse_leniently(spec: CommandSpec, example: str, vocabulary: Vocabulary) -> CommandRequest:
    """Parse with every word of the example accepted as a service and as an env."""
    words = tuple(token.text.split("=", 1)[-1].lower() for token in tokenize(example))
    environments = {name: (*envs, *words) for name, envs in vocabulary.environments.items()}
    known = tuple(env for envs in vocabulary.environments.values() for env in envs)
    for word in words:
        environments.setdefault(word, (*known, *words))
    defaults = {name: envs[0] for name, envs in environments.items() if envs}
    lenient = Vocabulary(environments=environments, default_envs={**defaults, **vocabulary.default_envs})
    return parse_command(example, {spec.name: spec}, lenient)


def _rewrite(example: str, request: CommandRequest, spec: CommandSpec, vocabulary: Vocabulary) -> str:
    service_param = _parameter_of(spec, "service")
    env_param = _parameter_of(spec, "env")
    service = request.params.get(service_param) if service_param else None
    env = request.params.get(env_param) if env_param else None
    text = example
    catalog_service = service if isinstance(service, str) and service in vocabulary.environments else None
    if isinstance(service, str) and catalog_service is None:
        catalog_service = _service_with(vocabulary, env if isinstance(env, str) else None)
        text = _replace_word(text, service, catalog_service)
    if isinstance(env, str) and catalog_service is not None and env not in vocabulary.environments[catalog_service]:
        text = _replace_word(text, env, vocabulary.environments[catalog_service][-1])
    return text


def _service_with(vocabulary: Vocabulary, env: str | None) -> str:
    for name, envs in vocabulary.environments.items():
        if env is not None and env in envs:
            return name
    return vocabulary.services[0]


def _parameter_of(spec: CommandSpec, kind: str) -> str | None:
    for name, parameter in spec.parameters.items():
        if parameter.type == kind:
            return name
    return None


def _replace_word(text: str, old: str, new: str) -> str:
    """Replace the first whole word ``old`` after the command (also as ``key=old``), keeping the rest as written."""
    command, _, rest = text.partition(" ")
    return f"{command} " + re.sub(rf"(?<![\w.-]){re.escape(old)}(?![\w.-])", new, rest, count=1, flags=re.IGNORECASE)
