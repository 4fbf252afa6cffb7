"""Load the config file and the runbooks directory into validated models.

Problems are collected, not raised one at a time, so ``opsbot validate`` can list every
mistake in a pull request at once, each as ``file:line: field.path: message``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from bot.catalog.config import OpsbotConfig
from bot.catalog.runbook_loading import keys_at, validate_runbook
from bot.catalog.runbooks import Runbook
from bot.catalog.schema_messages import schema_message
from bot.catalog.yaml_lines import YamlDocument, YamlProblem, format_problem, load_yaml_file
from bot.errors import ConfigError

ModelT = TypeVar("ModelT", bound=BaseModel)
MAX_RUNBOOK_FILES = 500


@dataclass(frozen=True)
class LoadedRunbook:
    """A runbook and the file it came from (for line numbers in later checks).

    ``broken`` names the pieces that failed the schema (``usage``, ``steps[2]``,
    ``parameters.version``); cross-checks skip them rather than report follow-on errors.
    """

    runbook: Runbook
    document: YamlDocument
    broken: frozenset[str] = frozenset()
    declared_parameters: frozenset[str] = frozenset()

    @property
    def named(self) -> bool:
        """Whether the name is sound, so policy rules may refer to this runbook."""
        return "name" not in self.broken


@dataclass
class LoadResult:
    """What loaded, and every problem found on the way."""

    config: OpsbotConfig | None = None
    config_document: YamlDocument | None = None
    runbooks: list[LoadedRunbook] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    """Not wrong, but likely not what was meant; ``opsbot validate`` prints them and still passes."""
    broken_runbook_names: set[str] = field(default_factory=set)
    """Names of runbooks that failed to load, so references to them are not reported twice."""

    def raise_for_problems(self) -> None:
        if self.problems:
            raise ConfigError(self.problems)


def load_config(path: Path, result: LoadResult) -> None:
    """Parse ``path`` into ``result.config`` or add its problems."""
    document = _load_document(path, result)
    if document is None:
        return
    result.config_document = document
    if not isinstance(document.data, dict):
        result.problems.append(format_problem(path, document.line_of([]), None, "the config must be a mapping of keys"))
        return
    result.config = _validate(OpsbotConfig, document, result.problems)
    if result.config is None:
        # Checks that need the config (runbook envs, limits) still run on what is sound.
        result.config = _salvage(OpsbotConfig, document.data)


def _salvage(model: type[ModelT], data: dict[object, object]) -> ModelT | None:
    """The model with each failing value removed (its own problem is already reported), or None."""
    try:
        model.model_validate(data)
    except ValidationError as error:
        pruned = copy.deepcopy(data)
        for item in error.errors(include_url=False):
            _remove(pruned, [part for part in item["loc"] if _is_field(part)])
        try:
            return model.model_validate(pruned)
        except ValidationError:
            return None
    return None


def _remove(data: object, location: Sequence[str | int]) -> None:
    """Delete the mapping key at ``location`` (a list item is never deleted: indexes name rules)."""
    for part in location[:-1]:
        inside_list = isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)
        if not (inside_list or (isinstance(data, dict) and part in data)):
            return
        data = data[part]  # type: ignore[index]
    if location and isinstance(data, dict):
        data.pop(location[-1], None)


def load_runbooks(directory: Path, result: LoadResult, action_names: Sequence[str] = ()) -> None:
    """Parse every ``*.yaml``/``*.yml`` in ``directory`` (not recursive); ``action_names`` feed suggestions."""
    if not directory.is_dir():
        result.problems.append(format_problem(directory, None, None, "runbooks directory does not exist"))
        return
    files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    if len(files) > MAX_RUNBOOK_FILES:
        result.problems.append(format_problem(directory, None, None, f"{len(files)} files; the limit is {MAX_RUNBOOK_FILES}"))
        return
    seen: dict[str, Path] = {}
    for path in files:
        document = _load_document(path, result)
        if document is None:
            continue
        if not isinstance(document.data, dict):
            result.problems.append(format_problem(path, document.line_of([]), None, "a runbook must be a mapping of keys"))
            continue
        parts = validate_runbook(document, action_names)
        result.problems.extend(problem_at(document, location, message) for location, message in parts.problems)
        if parts.runbook is None or "name" in parts.broken:
            result.broken_runbook_names.add(parts.raw_name or path.stem)
        if parts.runbook is None:
            continue
        runbook = parts.runbook
        if "name" in parts.broken:
            # Still cross-checked (steps, usage, examples), but under no name others can refer to.
            result.runbooks.append(LoadedRunbook(runbook, document, parts.broken, parts.declared_parameters))
            continue
        if runbook.name in seen:
            message = f"runbook {runbook.name!r} is already defined in {seen[runbook.name]}"
            result.problems.append(format_problem(path, document.line_of(["name"]), "name", message))
            continue
        seen[runbook.name] = path
        result.runbooks.append(LoadedRunbook(runbook, document, parts.broken, parts.declared_parameters))


def problem_at(document: YamlDocument, location: Sequence[str | int], message: str) -> str:
    """A problem line pointing at ``location`` inside ``document``."""
    field_path = _dotted(location)
    return format_problem(document.path, document.line_of(location), field_path or None, message)


def _load_document(path: Path, result: LoadResult) -> YamlDocument | None:
    try:
        return load_yaml_file(path)
    except YamlProblem as problem:
        result.problems.append(str(problem))
        return None


def _validate(model: type[ModelT], document: YamlDocument, problems: list[str]) -> ModelT | None:
    try:
        return model.model_validate(document.data)
    except ValidationError as error:
        for item in error.errors(include_url=False):
            location = [part for part in item["loc"] if _is_field(part)]
            problems.append(problem_at(document, location, schema_message(item, keys_at(model, location))))
        return None


def _is_field(part: object) -> bool:
    """Drop pydantic's validator tags (``function-after[...]``) from error locations."""
    if isinstance(part, int):
        return True
    return isinstance(part, str) and "[" not in part and "(" not in part


def _dotted(location: Sequence[str | int]) -> str:
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text
