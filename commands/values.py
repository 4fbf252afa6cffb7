"""Turn the words bound to parameters into typed, validated values.

Every error names the parameter, the value, and what is allowed, because the person
reading it is on call and should not have to open the runbook to fix a typo.
"""

from __future__ import annotations

import re

from bot.config import OpsbotConfig
from bot.durations import parse_duration
from bot.errors import UsageError
from bot.runbooks.models import ParameterSpec
from commands.suggest import did_you_mean, known_list

ParamValue = str | int | None
MAX_VALUE_LENGTH = 200


def convert_value(name: str, spec: ParameterSpec, raw: str, config: OpsbotConfig, service: str | None) -> ParamValue:
    """One parameter's typed value; raises ``UsageError`` naming what is allowed."""
    if len(raw) > MAX_VALUE_LENGTH:
        raise UsageError(f"{name} is {len(raw)} characters long; the limit is {MAX_VALUE_LENGTH}.")
    if spec.type == "service":
        return _service(raw, config)
    if spec.type == "env":
        return _env(raw, config, service)
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


def default_env(spec: ParameterSpec, config: OpsbotConfig, service: str | None) -> str:
    """The env when the user named none: the runbook's default, the service's, or its only one."""
    service_config = config.services.get(service) if service else None
    environments = list(service_config.environments) if service_config else []
    if isinstance(spec.default, str) and (not environments or spec.default in environments):
        return spec.default
    if service_config is not None and service_config.default_env:
        return service_config.default_env
    if len(environments) == 1:
        return environments[0]
    raise UsageError(f"Say which environment for {service}: {known_list(environments)} (for example: in {environments[0]}).")


def _service(raw: str, config: OpsbotConfig) -> str:
    for known in config.services:
        if known == raw.lower():
            return known
    suggestion = did_you_mean(raw, config.services)
    hint = f" Did you mean {suggestion}?" if suggestion else ""
    raise UsageError(f"Unknown service {raw!r}.{hint} Known services: {known_list(config.services)}.")


def _env(raw: str, config: OpsbotConfig, service: str | None) -> str:
    service_config = config.services.get(service) if service else None
    if service_config is not None:
        environments = list(service_config.environments)
        owner = f"{service} has environments"
    else:
        environments = sorted({env for item in config.services.values() for env in item.environments})
        owner = "Known environments are"
    for known in environments:
        if known == raw.lower():
            return known
    suggestion = did_you_mean(raw, environments)
    hint = f" Did you mean {suggestion}?" if suggestion else ""
    raise UsageError(f"Unknown environment {raw!r}.{hint} {owner}: {known_list(environments)}.")


def _integer(name: str, spec: ParameterSpec, raw: str) -> int:
    if not re.fullmatch(r"[+-]?\d{1,9}", raw):
        raise UsageError(f"{name} must be a whole number{_range_text(spec)}; got {raw!r}.")
    value = int(raw)
    if (spec.min is not None and value < spec.min) or (spec.max is not None and value > spec.max):
        raise UsageError(f"{name} {value} is out of range; allowed{_range_text(spec)}.")
    return value


def _range_text(spec: ParameterSpec) -> str:
    if spec.min is not None and spec.max is not None:
        return f" {spec.min}–{spec.max}"
    if spec.min is not None:
        return f" ≥ {spec.min}"
    if spec.max is not None:
        return f" ≤ {spec.max}"
    return ""


def _choice(name: str, spec: ParameterSpec, raw: str) -> str:
    choices = spec.choices or []
    for choice in choices:
        if choice.lower() == raw.lower():
            return choice
    raise UsageError(f"{name} must be one of {known_list(choices)}; got {raw!r}.")


def _string(name: str, spec: ParameterSpec, raw: str) -> str:
    if spec.pattern is not None and not re.fullmatch(spec.pattern, raw):
        hint = f" ({spec.help})" if spec.help else ""
        raise UsageError(f"{name} {raw!r} is not valid{hint}: it must match {spec.pattern}.")
    return raw
