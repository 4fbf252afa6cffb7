"""Turn the words bound to parameters into typed, validated values.

Every error names the parameter, the value, and what is allowed, because the person
reading it is on call and should not have to open the runbook to fix a typo.
"""

from __future__ import annotations

import re

from commands.durations import parse_duration
from commands.errors import UsageError
from commands.spec import ParameterLike
from commands.suggest import did_you_mean, known_list
from commands.vocabulary import Vocabulary

ParamValue = str | int | None
MAX_VALUE_LENGTH = 200


def convert_value(name: str, spec: ParameterLike, raw: str, names: Vocabulary, service: str | None) -> ParamValue:
    """One parameter's typed value; raises ``UsageError`` naming what is allowed."""
    if len(raw) > MAX_VALUE_LENGTH:
        raise UsageError(f"{name} is {len(raw)} characters long; the limit is {MAX_VALUE_LENGTH}.")
    if spec.type == "service":
        return _service(raw, names)
    if spec.type == "env":
        return _env(raw, names, service)
    if spec.type == "int":
        return _integer(name, spec, raw)
    if spec.type == "duration":
        try:
            return int(parse_duration(raw).total_seconds())
        except ValueError as error:
            raise UsageError(f"{name}: {error}.") from None
    if spec.type == "choice":
        return _choice(name, spec, raw)
    return _string(name, spec, raw)


def default_env(spec: ParameterLike, names: Vocabulary, service: str | None) -> str:
    """The env when the user named none: the runbook's default, the service's, or its only one."""
    environments = list(names.environments.get(service, ())) if service else []
    if isinstance(spec.default, str) and (not environments or spec.default in environments):
        return spec.default
    if service is not None and names.default_envs.get(service):
        return names.default_envs[service]
    if len(environments) == 1:
        return environments[0]
    if not environments:
        # No service named (a runbook over a whole environment) or a service with no envs:
        # offer every environment the catalog knows rather than an empty list.
        every = names.all_environments()
        example = f" (for example: in {every[0]})" if every else ""
        raise UsageError(f"Say which environment: {known_list(every)}{example}.")
    raise UsageError(f"Say which environment for {service}: {known_list(environments)} (for example: in {environments[0]}).")


def _service(raw: str, names: Vocabulary) -> str:
    for known in names.services:
        if known == raw.lower():
            return known
    suggestion = did_you_mean(raw, names.services)
    hint = f" Did you mean {suggestion}?" if suggestion else ""
    raise UsageError(f"Unknown service {raw!r}.{hint} Known services: {known_list(names.services)}.")


def _env(raw: str, names: Vocabulary, service: str | None) -> str:
    if service is not None and service in names.environments:
        environments = list(names.environments[service])
        owner = f"{service} has environments"
    else:
        environments = names.all_environments()
        owner = "Known environments are"
    for known in environments:
        if known == raw.lower():
            return known
    suggestion = did_you_mean(raw, environments)
    hint = f" Did you mean {suggestion}?" if suggestion else ""
    raise UsageError(f"Unknown environment {raw!r}.{hint} {owner}: {known_list(environments)}.")


def _integer(name: str, spec: ParameterLike, raw: str) -> int:
    raw = raw.removeprefix("#") if re.fullmatch(r"#\d+", raw) else raw  # `#12`, as every message labels a request
    if not re.fullmatch(r"[+-]?\d{1,9}", raw):
        raise UsageError(f"{name} must be a whole number{_range_text(spec)}; got {raw!r}.")
    value = int(raw)
    if (spec.min is not None and value < spec.min) or (spec.max is not None and value > spec.max):
        raise UsageError(f"{name} {value} is out of range; allowed{_range_text(spec)}.")
    return value


def _range_text(spec: ParameterLike) -> str:
    if spec.min is not None and spec.max is not None:
        return f" {spec.min}–{spec.max}"
    if spec.min is not None:
        return f" ≥ {spec.min}"
    if spec.max is not None:
        return f" ≤ {spec.max}"
    return ""


def _choice(name: str, spec: ParameterLike, raw: str) -> str:
    choices = spec.choices or []
    for choice in choices:
        if choice.lower() == raw.lower():
            return choice
    raise UsageError(f"{name} must be one of {known_list(choices)}; got {raw!r}.")


def _string(name: str, spec: ParameterLike, raw: str) -> str:
    if spec.pattern is not None and not re.fullmatch(spec.pattern, raw):
        hint = f" ({spec.help})" if spec.help else ""
        raise UsageError(f"{name} {raw!r} is not valid{hint}: it must match {spec.pattern}.")
    return raw
