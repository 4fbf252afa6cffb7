"""Policy checks that need the runbooks: limits that name real parameters, reach that steps cover.

Why: a misspelt limit (``replica:`` for ``replicas``) used to be ignored, so a production
bound silently disappeared; and a rule letting a Kubernetes-only runbook reach an ECS service
promised something opsbot refuses at run time. Both only show when config and runbooks meet.
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.catalog.config import KIND_NAMES, AccessRule, OpsbotConfig, ParameterLimit
from bot.catalog.loading import LoadedRunbook, problem_at
from bot.catalog.registry import ActionRegistry
from bot.catalog.yaml_lines import YamlDocument
from commands.spec import CommandSpec, ParameterLike
from commands.suggest import did_you_mean, known_list


def check_limits(
    config: OpsbotConfig,
    document: YamlDocument,
    runbooks: list[LoadedRunbook],
    builtins: Mapping[str, CommandSpec],
    broken_names: set[str],
    problems: list[str],
) -> None:
    """Each ``limits`` key names a parameter of a runbook the rule matches, with a bound of its type."""
    commands: dict[str, Mapping[str, ParameterLike]] = {name: spec.parameters for name, spec in builtins.items()}
    commands.update({item.runbook.name: item.runbook.parameters for item in runbooks})
    # Parameters that are declared but failed the schema: their own problem is already reported.
    unchecked = {item.runbook.name: item.declared_parameters - set(item.runbook.parameters) for item in runbooks}
    for index, rule in enumerate(config.policy.rules):
        if not rule.limits:
            continue
        matched = _matched(rule, commands, broken_names)
        if matched is None:
            continue  # a broken runbook is matched; its parameters are unknown, so say nothing more
        skipped = {name for command, names in unchecked.items() if _listed(command, rule) for name in names}
        for key, limit in rule.limits.items():
            if key in skipped:
                continue
            where: list[str | int] = ["policy", "rules", index, "limits", key]
            message = _limit_problem(key, limit, matched)
            if message is not None:
                problems.append(problem_at(document, where, message))


def check_clients(config: OpsbotConfig, document: YamlDocument, problems: list[str]) -> None:
    """Each ``allow.clients`` entry names a client under ``api.clients`` (a typo would silently allow nobody)."""
    declared = config.api.clients
    for index, rule in enumerate(config.policy.rules):
        for position, name in enumerate(rule.allow.clients):
            if name in declared:
                continue
            suggestion = did_you_mean(name, declared)
            hint = f"did you mean {suggestion}?" if suggestion else f"declared clients: {known_list(declared) if declared else 'none'}"
            where: list[str | int] = ["policy", "rules", index, "allow", "clients", position]
            problems.append(problem_at(document, where, f"unknown API client {name!r} (declare it under api.clients); {hint}"))


def check_reach(config: OpsbotConfig, runbooks: list[LoadedRunbook], registry: ActionRegistry, warnings: list[str]) -> None:
    """Warn when a rule lets a runbook reach a service whose kind of target none of its backend steps handles."""
    for loaded in runbooks:
        runbook = loaded.runbook
        kinds = {kind for step in runbook.steps if (action := registry.get(step.action)) and (kind := action.target_kind)}
        if not kinds or any(part.startswith("steps") for part in loaded.broken):
            continue
        unreachable: dict[str, str] = {}
        for index, rule in enumerate(config.policy.rules):
            if runbook.name not in rule.runbooks and "*" not in rule.runbooks:
                continue
            for service_name, service in config.services.items():
                for env_name, environment in service.environments.items():
                    kind = environment.target.kind
                    if kind not in kinds and rule.matches(runbook.name, service_name, env_name):
                        unreachable.setdefault(f"{service_name}/{env_name} ({KIND_NAMES.get(kind, kind)})", rule.label(index))
        if unreachable:
            places = ", ".join(f"{place} by {rule}" for place, rule in unreachable.items())
            runs_on = ", ".join(sorted(kinds))
            message = (
                f"warning: steps run only on {runs_on} targets, but the policy lets {runbook.name} reach {places}; "
                "opsbot refuses it there. Narrow the rule's services or add steps for that kind."
            )
            warnings.append(problem_at(loaded.document, ["steps"], message))


def _matched(
    rule: AccessRule, commands: Mapping[str, Mapping[str, ParameterLike]], broken: set[str]
) -> list[Mapping[str, ParameterLike]] | None:
    names = list(commands) if "*" in rule.runbooks else [name for name in rule.runbooks if name in commands]
    if any(name in broken for name in rule.runbooks):
        return None
    return [commands[name] for name in names]


def _listed(command: str, rule: AccessRule) -> bool:
    return command in rule.runbooks or "*" in rule.runbooks


def _limit_problem(key: str, limit: ParameterLimit, matched: list[Mapping[str, ParameterLike]]) -> str | None:
    declared = [parameters[key] for parameters in matched if key in parameters]
    if not declared:
        names = sorted({name for parameters in matched for name in parameters})
        suggestion = did_you_mean(key, names)
        hint = f"; did you mean {suggestion!r}?" if suggestion else f"; their parameters: {known_list(names) or 'none'}"
        return f"no runbook matched by this rule has a parameter {key!r}{hint}"
    if limit.min is not None and limit.max is not None and limit.max < limit.min:
        return f"max ({limit.max}) is below min ({limit.min})"
    if limit.min is not None or limit.max is not None:
        wrong = sorted({spec.type for spec in declared if spec.type not in ("int", "duration")})
        if wrong:
            return f"min and max bound whole numbers, but {key!r} is a {wrong[0]} parameter; use allowed: [...] to list the values"
    if limit.allowed is not None and not limit.allowed:
        return "allowed is empty, so nothing could ever be allowed; list the values or remove it"
    return None
