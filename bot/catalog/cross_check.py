"""Cross-checks between the config, the runbooks and the action registry.

Schema errors are caught while loading; these checks catch what only shows when the
pieces meet: a step naming an action no backend provides, a policy rule for an env no
service has, an approver group nobody declared.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Collection, Mapping
from typing import Any

from pydantic import ValidationError

from bot.catalog.actions import Action
from bot.catalog.config import OpsbotConfig
from bot.catalog.examples import example_problem
from bot.catalog.grammar import command_spec_of, vocabulary_of
from bot.catalog.loading import LoadedRunbook, LoadResult, problem_at
from bot.catalog.policy_checks import check_clients, check_limits, check_reach
from bot.catalog.registry import ActionRegistry
from bot.catalog.runbooks import TEMPLATE_REFERENCE, StepSpec
from bot.catalog.schedules import cron_trigger
from bot.catalog.yaml_lines import YamlDocument
from commands.spec import CommandSpec
from commands.suggest import did_you_mean, known_list
from commands.usage import UsageSyntaxError, compile_usage, slots
from commands.vocabulary import Vocabulary

POLICY_ONLY_NAMES = frozenset({"acknowledge", "read", "unlock-others", "digest"})
"""Names a policy rule may use that are no runbook: the incident Acknowledge button, the reading built-ins
(``show``, ``history``, ``approvals``), releasing another person's lock, and ``digest`` (also a built-in)."""


def cross_check(result: LoadResult, registry: ActionRegistry, builtins: Mapping[str, CommandSpec]) -> None:
    """Append every cross-reference problem to ``result.problems`` (and doubtful reach to ``warnings``)."""
    for loaded in result.runbooks:
        _check_runbook(loaded, registry, builtins, result)
    if result.config is not None and result.config_document is not None:
        named = [item for item in result.runbooks if item.named]
        _check_config(
            result.config, result.config_document, {item.runbook.name for item in named} | set(builtins) | POLICY_ONLY_NAMES, result
        )
        config, document = result.config, result.config_document
        check_limits(config, document, named, builtins, result.broken_runbook_names, result.problems)
        check_reach(config, named, registry, result.warnings)
        check_clients(config, document, result.problems)


def _check_runbook(loaded: LoadedRunbook, registry: ActionRegistry, builtins: Mapping[str, CommandSpec], result: LoadResult) -> None:
    runbook, document, broken = loaded.runbook, loaded.document, loaded.broken
    problems = result.problems
    declared = loaded.declared_parameters | set(runbook.parameters)
    if runbook.name in builtins:
        problems.append(problem_at(document, ["name"], f"{runbook.name!r} is a built-in command; choose another name"))
    usage_ok = "usage" not in broken
    try:
        usage_slots = slots(compile_usage(runbook.usage)) if usage_ok else []
    except UsageSyntaxError as error:
        problems.append(problem_at(document, ["usage"], str(error)))
        usage_slots, usage_ok = [], False
    for slot in usage_slots:
        if slot not in declared:
            problems.append(problem_at(document, ["usage"], f"{{{slot}}} is not declared under parameters"))
            usage_ok = False
    needs_target = False
    for index, step in enumerate(runbook.steps):
        if f"steps[{index}]" in broken:
            continue
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
            if reference not in declared:
                message = f"{{{reference}}} is not a parameter of this runbook"
                problems.append(problem_at(document, ["steps", index, "args"], message))
    parameters_ok = not any(part.startswith("parameters") for part in broken)
    if needs_target and parameters_ok:
        for kind in ("service", "env"):
            if runbook.parameter_of_type(kind) is None:
                message = f"steps act on a service, so declare a parameter of type {kind}"
                problems.append(problem_at(document, ["parameters"], message))
    for name, spec in runbook.parameters.items():
        if spec.type == "env" and spec.default == "*" and needs_target:
            problems.append(problem_at(document, ["parameters", name, "default"], "a runbook acting on a target needs one env, not '*'"))
    if usage_ok and parameters_ok and "examples" not in broken:
        _check_examples(loaded, vocabulary_of(result.config) if result.config is not None else Vocabulary(), problems)
    if result.config is not None:
        _check_runbook_against_config(runbook.approval, runbook.parameters, document, result.config, result)


def _check_examples(loaded: LoadedRunbook, vocabulary: Vocabulary, problems: list[str]) -> None:
    spec = command_spec_of(loaded.runbook)
    for index, example in enumerate(loaded.runbook.examples):
        message = example_problem(spec, example, vocabulary)
        if message is not None:
            problems.append(problem_at(loaded.document, ["examples", index], message))


def _check_runbook_against_config(
    approval: dict[str, Any], parameters: dict[str, Any], document: YamlDocument, config: OpsbotConfig, result: LoadResult
) -> None:
    """Env and group names in a runbook must be the config's; the fix is in the runbook, so say so."""
    problems = result.problems
    environments = _all_envs(config)
    config_name = result.config_document.path.name if result.config_document is not None else "the config"
    fix = f"edit this runbook ({document.path.name}) to use the names in {config_name}"
    for env, rule in approval.items():
        if env != "*" and env not in environments:
            suggestion = did_you_mean(env, environments)
            hint = f"did you mean {suggestion}? " if suggestion else ""
            message = f"unknown env {env!r}; {hint}{config_name} has envs: {known_list(environments)}; {fix}"
            problems.append(problem_at(document, ["approval", env], message))
        for index, group in enumerate(rule.approvers):
            if group not in config.groups:
                problems.append(problem_at(document, ["approval", env, "approvers", index], f"{_unknown_group(group, config)}; {fix}"))
    for name, spec in parameters.items():
        if spec.type == "env" and isinstance(spec.default, str) and spec.default not in (*environments, "*"):
            message = f"default env {spec.default!r} is not an env of any service; known: {known_list(environments)}; {fix}"
            problems.append(problem_at(document, ["parameters", name, "default"], message))


def _check_config(config: OpsbotConfig, document: YamlDocument, command_names: set[str], result: LoadResult) -> None:
    problems = result.problems
    environments = _all_envs(config)
    commands = command_names
    _check_timezone(config.timezone, ["timezone"], document, problems)
    for service_name, service in config.services.items():
        for index, owner in enumerate(service.owners):
            if owner.startswith("@") and owner[1:] not in config.groups:
                problems.append(problem_at(document, ["services", service_name, "owners", index], _unknown_group(owner[1:], config)))
    for index, rule in enumerate(config.policy.rules):
        where: list[str | int] = ["policy", "rules", index]
        _check_names(rule.runbooks, commands, "runbook", [*where, "runbooks"], document, problems, result.broken_runbook_names)
        _check_names(rule.envs, environments, "env", [*where, "envs"], document, problems)
        _check_names(rule.services, set(config.services), "service", [*where, "services"], document, problems)
        for position, group in enumerate(rule.allow.groups):
            if group not in config.groups:
                problems.append(problem_at(document, [*where, "allow", "groups", position], _unknown_group(group, config)))
        if rule.require_checks:
            unsourced = [name for name, entry in config.services.items() if entry.source is None and name in _expand(rule.services, config)]
            if unsourced:
                message = (
                    f"{', '.join(unsourced)} name no source ({{github: owner/repo}}), so their checks cannot be read; "
                    "add a source to each or leave them out of this rule's services"
                )
                problems.append(problem_at(document, [*where, "require_checks"], message))
        if rule.approvals is not None:
            for position, group in enumerate(rule.approvals.approvers):
                if group not in config.groups:
                    location: list[str | int] = [*where, "approvals", "approvers", position]
                    problems.append(problem_at(document, location, _unknown_group(group, config)))
    for index, freeze in enumerate(config.policy.freezes):
        where = ["policy", "freezes", index]
        _check_timezone(freeze.timezone, [*where, "timezone"], document, problems)
        _check_names(freeze.runbooks, commands, "runbook", [*where, "runbooks"], document, problems, result.broken_runbook_names)
        _check_names(freeze.envs, environments, "env", [*where, "envs"], document, problems)
    _check_timezone(config.insights.timezone, ["insights", "timezone"], document, problems)
    for field in ("deploy_runbooks", "rollback_runbooks"):
        if field in config.insights.model_fields_set:  # the defaults name runbooks a catalog may not have
            _check_names(getattr(config.insights, field), commands, "runbook", ["insights", field], document, problems)
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


def _check_names(
    names: list[str],
    known: set[str],
    kind: str,
    where: list[str | int],
    document: YamlDocument,
    problems: list[str],
    broken: Collection[str] = (),
) -> None:
    """Unknown names, with a suggestion from the sound ones; names of files that failed to load pass silently."""
    for index, name in enumerate(names):
        if name != "*" and name not in known and name not in broken:
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


def _expand(names: list[str], config: OpsbotConfig) -> set[str]:
    return set(config.services) if "*" in names else set(names)


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
