"""Everything loaded from files, validated once at start: config, runbooks, actions, commands."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bot.actions.registry import ActionRegistry, build_registry
from bot.config import OpsbotConfig
from bot.loading import LoadResult, load_config, load_runbooks
from bot.runbooks.models import Runbook
from bot.validate import cross_check
from commands.builtins import BUILTIN_COMMANDS
from commands.spec import CommandSpec


@dataclass(frozen=True)
class Catalog:
    """The validated definitions the bot runs on; immutable for the life of the process."""

    config: OpsbotConfig
    runbooks: dict[str, Runbook]
    registry: ActionRegistry
    commands: dict[str, CommandSpec]

    def runbook(self, name: str) -> Runbook | None:
        return self.runbooks.get(name)


def check_files(config_path: Path, runbooks_dir: Path, registry: ActionRegistry | None = None) -> LoadResult:
    """Load and cross-check; the result lists every problem (empty when all is well)."""
    result = LoadResult()
    load_config(config_path, result)
    load_runbooks(runbooks_dir, result)
    cross_check(result, registry or build_registry())
    return result


def load_catalog(config_path: Path, runbooks_dir: Path, registry: ActionRegistry | None = None) -> Catalog:
    """The catalog, or ``ConfigError`` listing every problem (the bot refuses to start on any)."""
    actions = registry or build_registry()
    result = check_files(config_path, runbooks_dir, actions)
    result.raise_for_problems()
    assert result.config is not None  # no problems means the config loaded
    runbooks = {item.runbook.name: item.runbook for item in result.runbooks}
    commands = dict(BUILTIN_COMMANDS)
    commands.update({name: CommandSpec.from_runbook(runbook) for name, runbook in runbooks.items()})
    return Catalog(config=result.config, runbooks=runbooks, registry=actions, commands=commands)
