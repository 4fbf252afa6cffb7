"""Cross-checks between the config, the runbooks and the action registry.

Schema errors are caught while loading; these checks catch what only shows when the
pieces meet: a step naming an action no backend provides, a policy rule for an env no
service has, an approver group nobody declared.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Collection
from typing import Any

from pydantic import ValidationError

from bot.catalog.actions import Action
from bot.catalog.config import OpsbotConfig
from bot.catalog.loading import LoadedRunbook, LoadResult, problem_at
from bot.catalog.registry import ActionRegistry
from bot.catalog.runbooks import TEMPLATE_REFERENCE, StepSpec
from bot.catalog.schedules import cron_trigger
from bot.catalog.yaml_lines import YamlDocument
from commands.suggest import did_you_mean, known_list
from commands.usage import UsageSyntaxError, compile_usage, slots

POLICY_ONLY_NAMES = frozenset({"acknowledge", "read", "unlock-others", "digest"})
"""Names a policy rule may use that are no runbook: the incident Acknowledge button, the reading built-ins
(``show``, ``history``, ``approvals``), releasing another person's lock, and ``digest`` (also a built-in)."""


def cross_check(result: LoadResult, registry: ActionRegistry, builtins: Collection[str]) -> None:
    """Append every cross-reference problem to ``result.problems``."""
    for loaded in result.runbooks:
        _check_runbook(loaded, registry, builtins, result)
    if result.config is not None and result.config_document is not None:
        names = {item.runbook.name for item in result.runbooks} | result.broken_runbook_names
        _check_config(result.config, result.config_document, names | set(builtins) | POLICY_ONLY_NAMES, result)


def _check_runbook(loaded: LoadedRunbook, registry: ActionRegistry, builtins: Collection[str], result: LoadResult) -> None:
    runbook, document = loaded.runbook, loaded.document
    problems = result.problems
    if runbook.name in builtins:
        problems.append(problem_at(document, ["name"], f"{runbook.name!r} is a built-in command; choose another name"))
    try:
        usage_slots = slots(compile_usage(runbook.usage))
    except UsageSyntaxError as error:
        problems.append(problem_at(document, ["usage"], str(error)))
        usage_slots = []
    for slot in usage_slots:
        if slot not in runbook.parameters:
            problems.append(problem_at(document, ["usage"], f"{{{slot}}} is not declared under parameters"))
    needs_target = False
    for index, step in enumerate(runbook.steps):
        action = registry.get(step.action)
        if action is None:
            suggestion = did_you_mean(step.action, registry.names())
            hint = f"; did you mean {suggestion}?" if suggestion else f"; known actions: {known_list(registry.names(), 40)}"
            problems.append(problem_at(document, ["steps", index, "action"], f"unknown action {step.action!r}{hint}"))
            continue
        needs_target = needs_target or action.target_kind is not None
        fields = action.args_model.model_fields
        for key in step.args:
            if key not in fields:
                message = f"{step.action} has no argument {key!r}; arguments: {known_list(fields) or 'none'}"
                problems.append(problem_at(document, ["steps", index, "args", key], message))
        for key, info in fields.items():
            if info.is_required() and key not in step.args:
                problems.append(problem_at(document, ["steps", index, "args"], f"{step.action} needs argument {key!r}"))
        problems.extend(_step_argument_problems(step, action, index, document, result.config))
        for reference in step.template_references():
            if reference not in runbook.parameters:
                message = f"{{{reference}}} is not a parameter of this runbook"
                problems.append(problem_at(document, ["steps", index, "args"], message))
    if needs_target:
        for kind in ("service", "env"):
            if runbook.parameter_of_type(kind) is None:
                message = f"steps act on a service, so declare a parameter of type {kind}"
                problems.append(problem_at(document, ["parameters"], message))
    for name, spec in runbook.parameters.items():
        if spec.type == "env" and spec.default == "*" and needs_target:
            problems.append(problem_at(document, ["parameters", name, "default"], "a runbook acting on a target needs one env, not '*'"))
    if result.config is not None:
        _check_runbook_against_config(runbook.approval, runbook.parameters, document, result.config, problems)


def _check_runbook_against_config(
    approval: dict[str, Any], parameters: dict[str, Any], document: YamlDocument, config: OpsbotConfig, problems: list[str]
) -> None:
    environments = _all_envs(config)
    for env, rule in approval.items():
        if env != "*" and env not in environments:
            problems.append(problem_at(document, ["approval", env], f"unknown env {env!r}; known: {known_list(environments)}"))
        for index, group in enumerate(rule.approvers):
            if group not in config.groups:
                problems.append(problem_at(document, ["approval", env, "approvers", index], _unknown_group(group, config)))
    for name, spec in parameters.items():
        if spec.type == "env" and isinstance(spec.default, str) and spec.default not in (*environments, "*"):
            message = f"default env {spec.default!r} is not an env of any service; known: {known_list(environments)}"
            problems.append(problem_at(document, ["parameters", name, "default"], message))


def _check_config(config: OpsbotConfig, document: YamlDocument, command_names: set[str], result: LoadResult) -> None:
    problems = result.problems
    environments = _all_envs(config)
    commands = command_names
    for service_name, service in config.services.items():
        for index, owner in enumerate(service.owners):
            if owner.startswith("@") and owner[1:] not in config.groups:
                problems.append(problem_at(document, ["services", service_name, "owners", index], _unknown_group(owner[1:], config)))
    for index, rule in enumerate(config.policy.rules):
        where: list[str | int] = ["policy", "rules", index]
        _check_names(rule.runbooks, commands, "runbook", [*where, "runbooks"], document, problems)
        _check_names(rule.envs, environments, "env", [*where, "envs"], document, problems)
        _check_names(rule.services, set(config.services), "service", [*where, "services"], document, problems)
        for position, group in enumerate(rule.allow.groups):
            if group not in config.groups:
                problems.append(problem_at(document, [*where, "allow", "groups", position], _unknown_group(group, config)))
        if rule.approvals is not None:
            for position, group in enumerate(rule.approvals.approvers):
                if group not in config.groups:
                    location: list[str | int] = [*where, "approvals", "approvers", position]
                    problems.append(problem_at(document, location, _unknown_group(group, config)))
    for index, freeze in enumerate(config.policy.freezes):
        where = ["policy", "freezes", index]
        _check_timezone(freeze.timezone, [*where, "timezone"], document, problems)
        _check_names(freeze.runbooks, commands, "runbook", [*where, "runbooks"], document, problems)
        _check_names(freeze.envs, environments, "env", [*where, "envs"], document, problems)
    for index, digest in enumerate(config.channels.digests):
        where = ["channels", "digests", index]
        if _check_timezone(digest.timezone, [*where, "timezone"], document, problems):
            try:
                # The scheduler's own constructor, so validate accepts exactly what will run.
                cron_trigger(digest.cron, digest.timezone)
            except ValueError as error:
                problems.append(problem_at(document, [*where, "cron"], f"invalid cron expression: {error}"))
        _check_names(digest.services, set(config.services), "service", [*where, "services"], document, problems)
        _check_names(digest.envs, environments, "env", [*where, "envs"], document, problems)


def _check_names(names: list[str], known: set[str], kind: str, where: list[str | int], document: YamlDocument, problems: list[str]) -> None:
    for index, name in enumerate(names):
        if name != "*" and name not in known:
            suggestion = did_you_mean(name, known)
            hint = f"; did you mean {suggestion}?" if suggestion else f"; known: {known_list(known)}"
            problems.append(problem_at(document, [*where, index], f"unknown {kind} {name!r}{hint}"))


def _check_timezone(name: str, where: list[str | int], document: YamlDocument, problems: list[str]) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        problems.append(problem_at(document, where, f"unknown time zone {name!r}; use an IANA name like Europe/Berlin"))
        return False
    return True


def _unknown_group(group: str, config: OpsbotConfig) -> str:
    suggestion = did_you_mean(group, config.groups)
    hint = f"; did you mean {suggestion}?" if suggestion else f"; declared groups: {known_list(config.groups) or 'none'}"
    return f"group {group!r} is not declared under groups{hint}"


def _all_envs(config: OpsbotConfig) -> set[str]:
    return {env for service in config.services.values() for env in service.environments}


def _step_argument_problems(
    step: StepSpec, action: type[Action[Any]], index: int, document: YamlDocument, config: OpsbotConfig | None
) -> list[str]:
    """Arguments written out in full (no ``{parameter}`` in them) must already satisfy the action's ``args_model``,
    and the action's own ``check_step`` (an allowed URL, …): a plugin's bad argument is a ``file:line`` problem here,
    not a failure at the first run."""
    problems: list[str] = []
    literal = {key for key, value in step.args.items() if not _references_any(value)}
    try:
        action.args_model.model_validate(step.args)
    except ValidationError as error:
        for item in error.errors(include_url=False):
            location = [part for part in item["loc"] if isinstance(part, str | int)]
            if location and location[0] in literal and item.get("type") != "missing":
                message = f"{step.action}: {str(item.get('msg', 'invalid value')).removeprefix('Value error, ')}"
                problems.append(problem_at(document, ["steps", index, "args", *location], message))
    if config is not None:
        for key, message in action.check_step(step.args, config):
            problems.append(problem_at(document, ["steps", index, "args", key], message))
    return problems


def _references_any(value: Any) -> bool:
    if isinstance(value, str):
        return TEMPLATE_REFERENCE.search(value) is not None
    if isinstance(value, dict):
        return any(_references_any(item) for item in value.values())
    if isinstance(value, list):
        return any(_references_any(item) for item in value)
    return False
