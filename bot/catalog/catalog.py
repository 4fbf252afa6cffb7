"""Everything loaded from files, validated once at start: config, runbooks, actions, commands."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bot.catalog.config import OpsbotConfig, Target
from bot.catalog.cross_check import cross_check
from bot.catalog.examples import catalog_examples
from bot.catalog.grammar import command_spec_of, parse, vocabulary_of
from bot.catalog.kubeconfig_check import exec_plugin_problems
from bot.catalog.loading import LoadResult, load_config, load_runbooks
from bot.catalog.registry import ActionRegistry, build_registry
from bot.catalog.runbooks import Runbook
from bot.timefmt import use_zone
from commands.parser import CommandRequest
from commands.spec import CommandSpec
from commands.vocabulary import Vocabulary


@dataclass(frozen=True)
class Catalog:
    """The validated definitions the bot runs on; immutable for the life of the process."""

    config: OpsbotConfig
    runbooks: dict[str, Runbook]
    registry: ActionRegistry
    commands: dict[str, CommandSpec]
    vocabulary: Vocabulary

    def runbook(self, name: str) -> Runbook | None:
        return self.runbooks.get(name)

    def parse(self, text: str) -> CommandRequest:
        """Pure parse for the ack path; raises ``UsageError`` only."""
        return parse(text, self.commands, self.vocabulary)

    def target(self, service: str, env: str) -> Target:
        """The catalog's target for service/env (parsing already checked both exist)."""
        return self.config.services[service].environments[env].target

    def describe_target(self, service: str, env: str) -> str:
        """``deployment shop/checkout (context prod)``, or "" once the service has left the catalog."""
        entry = self.config.services.get(service)
        environment = entry.environments.get(env) if entry is not None else None
        return environment.target.describe() if environment is not None else ""


@dataclass(frozen=True)
class Commands:
    """What an HTTP worker needs to parse text: the commands and the catalog's names (no actions, no backends)."""

    commands: dict[str, CommandSpec]
    vocabulary: Vocabulary
    config: OpsbotConfig
    """The config file itself: the inbound API authenticates its clients and pre-checks the policy in the worker."""

    def parse(self, text: str) -> CommandRequest:
        return parse(text, self.commands, self.vocabulary)


def check_files(
    config_path: Path, runbooks_dir: Path, *, builtins: Mapping[str, CommandSpec], registry: ActionRegistry | None = None
) -> LoadResult:
    """Load and cross-check; the result lists every problem (empty when all is well)."""
    result = LoadResult()
    actions = registry or build_registry()
    result.problems.extend(actions.problems)
    load_config(config_path, result)
    load_runbooks(runbooks_dir, result, actions.names())
    cross_check(result, actions, builtins)
    if result.config is not None:
        result.problems.extend(f"{config_path}: {problem}" for problem in exec_plugin_problems(result.config))
    return result


def load_catalog(
    config_path: Path, runbooks_dir: Path, *, builtins: Mapping[str, CommandSpec], registry: ActionRegistry | None = None
) -> Catalog:
    """The catalog, or ``ConfigError`` listing every problem (the bot refuses to start on any)."""
    actions = registry or build_registry()
    return catalog_of(check_files(config_path, runbooks_dir, builtins=builtins, registry=actions), actions, builtins=builtins)


def catalog_of(result: LoadResult, actions: ActionRegistry, *, builtins: Mapping[str, CommandSpec]) -> Catalog:
    """The catalog of files ``check_files`` already checked with ``actions`` (``opsbot serve`` checks once, then serves with it)."""
    result.raise_for_problems()
    assert result.config is not None  # no problems means the config loaded
    runbooks = {item.runbook.name: item.runbook for item in result.runbooks}
    use_zone(result.config.timezone)
    return Catalog(
        config=result.config,
        runbooks=runbooks,
        registry=actions,
        commands=_commands(builtins, runbooks, vocabulary_of(result.config)),
        vocabulary=vocabulary_of(result.config),
    )


def load_commands(config_path: Path, runbooks_dir: Path, *, builtins: Mapping[str, CommandSpec]) -> Commands:
    """Only what parsing needs, without importing any backend (``opsbot serve`` checked the files before it started workers)."""
    result = LoadResult()
    load_config(config_path, result)
    load_runbooks(runbooks_dir, result)
    result.raise_for_problems()
    assert result.config is not None
    runbooks = {item.runbook.name: item.runbook for item in result.runbooks}
    vocabulary = vocabulary_of(result.config)
    return Commands(commands=_commands(builtins, runbooks, vocabulary), vocabulary=vocabulary, config=result.config)


def _commands(builtins: Mapping[str, CommandSpec], runbooks: Mapping[str, Runbook], vocabulary: Vocabulary) -> dict[str, CommandSpec]:
    """Built-ins and runbooks; a runbook's examples name this catalog's services, as help shows them."""
    commands = dict(builtins)
    for name, runbook in runbooks.items():
        spec = command_spec_of(runbook)
        commands[name] = dataclasses.replace(spec, examples=catalog_examples(spec, vocabulary))
    return commands
