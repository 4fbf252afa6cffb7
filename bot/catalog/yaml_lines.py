"""Safe YAML loading that remembers where every value came from.

Why: ``opsbot validate`` must say ``file:line: field.path: message``, so we keep the
composed node tree next to the data. Why the limits: runbooks arrive by pull request,
and a YAML "billion laughs" file (aliases of aliases) would expand to gigabytes in
``yaml.safe_load``; we count the expanded size on the node graph before constructing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

MAX_FILE_BYTES = 1_000_000
MAX_EXPANDED_NODES = 100_000
MAX_DEPTH = 50
"""Deeper nesting than any config or runbook needs; PyYAML's composer recurses per level."""

_FAST_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's loader when PyYAML was built with it: the same nodes and line marks, ~8× faster (``opsbot validate``
starts in well under a second). A file it refuses is parsed again by the pure-Python loader, whose error
wording ``yaml_syntax_message`` knows."""

_OPENERS = (yaml.BlockMappingStartToken, yaml.BlockSequenceStartToken, yaml.FlowMappingStartToken, yaml.FlowSequenceStartToken)
_CLOSERS = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)


class YamlProblem(Exception):
    """A file that cannot be loaded at all; ``line`` is 1-based when known."""

    def __init__(self, path: Path, line: int | None, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.line = line
        self.message = message

    def __str__(self) -> str:
        return format_problem(self.path, self.line, None, self.message)


@dataclass(frozen=True)
class YamlDocument:
    """Parsed data plus its node tree, to map a field path back to a line."""

    path: Path
    data: Any
    root: yaml.Node | None

    def line_of(self, location: Sequence[str | int]) -> int | None:
        """1-based line of the deepest node on ``location`` that exists in the file."""
        node = self.root
        line = node.start_mark.line + 1 if node is not None else None
        for key in location:
            found = _child(node, key)
            if found is None:
                break
            # A mapping entry is reported at its key's line, where a reader looks for it.
            line, node = found[0].start_mark.line + 1, found[1]
        return line


def load_yaml_file(path: Path) -> YamlDocument:
    """Read, size-check and parse one YAML file; raises ``YamlProblem`` with a line."""
    try:
        size = path.stat().st_size
    except OSError as error:
        raise YamlProblem(path, None, f"cannot read the file ({error.strerror})") from None
    if size > MAX_FILE_BYTES:
        raise YamlProblem(path, None, f"file is {size:,} bytes; the limit is {MAX_FILE_BYTES:,} bytes")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise YamlProblem(path, None, f"not UTF-8 text ({error.reason} at byte {error.start})") from None
    return parse_yaml_text(text, path)


def parse_yaml_text(text: str, path: Path) -> YamlDocument:
    """Parse YAML text with the safe loader after checking its nesting and expanded size."""
    try:
        return _parse(text, path, _FAST_LOADER)
    except yaml.YAMLError:
        return _parse(text, path, yaml.SafeLoader)  # the same refusal, in the words yaml_syntax_message maps


def _parse(text: str, path: Path, loader: type[yaml.SafeLoader]) -> YamlDocument:
    try:
        _check_depth(text, path, loader)
        root = yaml.compose(text, Loader=loader)
    except yaml.MarkedYAMLError as error:
        if loader is not yaml.SafeLoader:
            raise
        line = error.problem_mark.line + 1 if error.problem_mark is not None else None
        raise YamlProblem(path, line, yaml_syntax_message(error.problem or "", error.context or "")) from None
    except yaml.YAMLError as error:
        if loader is not yaml.SafeLoader:
            raise
        raise YamlProblem(path, None, f"not valid YAML ({error})") from None
    if root is None:
        return YamlDocument(path=path, data=None, root=None)
    expanded = _expanded_size(root, {})
    if expanded > MAX_EXPANDED_NODES:
        raise YamlProblem(
            path,
            root.start_mark.line + 1,
            f"document expands to more than {MAX_EXPANDED_NODES:,} values (aliases of aliases?); refusing to load it",
        )
    try:
        data = loader(text).get_single_data()
    except yaml.MarkedYAMLError as error:
        if loader is not yaml.SafeLoader:
            raise
        line = error.problem_mark.line + 1 if error.problem_mark is not None else None
        raise YamlProblem(path, line, yaml_syntax_message(error.problem or "", error.context or "")) from None
    return YamlDocument(path=path, data=data, root=root)


def yaml_syntax_message(problem: str, context: str) -> str:
    """PyYAML's parser wording (``expected <block end>, but found …``) said the way a reader fixes it."""
    for needle, message in _SYNTAX_MESSAGES:
        if needle in problem or (needle.startswith("while") and needle in context):
            return f"YAML syntax error: {message}"
    return f"YAML syntax error: {problem} (check the indentation and quoting on this line)"


_SYNTAX_MESSAGES = (
    ("expected <block end>", "this line is not indented like the lines above it; keys of one mapping start in the same column"),
    ("mapping values are not allowed", "a ':' where none was expected; one 'key: value' per line, or quote a value that contains ': '"),
    ("cannot start any token", "a tab or a character that cannot start a value; indent with spaces and quote values starting with @ or `"),
    ("while scanning a quoted scalar", "a quoted value is never closed; add the closing quote"),
    ("could not find expected ':'", "a line is missing ':' after its key (or a quote is not closed)"),
    ("expected ',' or ']'", "a [list] is never closed; add ']'"),
    ("expected ',' or '}'", "a {mapping} is never closed; add '}'"),
    ("found undefined alias", "an alias (*name) refers to no anchor (&name) above it"),
    ("found duplicate anchor", "the same anchor (&name) is defined twice"),
    ("while scanning an alias", "'*' starts an alias; quote a value that starts with '*'"),
    ("while scanning an anchor", "'&' starts an anchor; quote a value that starts with '&'"),
)


def format_problem(path: Path | str, line: int | None, field: str | None, message: str) -> str:
    """The one format every validation problem is printed in."""
    where = f"{path}:{line}" if line is not None else f"{path}"
    return f"{where}: {field}: {message}" if field else f"{where}: {message}"


def _check_depth(text: str, path: Path, loader: type[yaml.SafeLoader]) -> None:
    """Refuse deep nesting before composing: the scanner is iterative, the composer is not."""
    depth = 0
    for token in yaml.scan(text, Loader=loader):
        if isinstance(token, _OPENERS):
            depth += 1
            if depth > MAX_DEPTH:
                line = token.start_mark.line + 1
                raise YamlProblem(path, line, f"nested more than {MAX_DEPTH} levels deep; a config or runbook never needs that")
        elif isinstance(token, _CLOSERS):
            depth -= 1


def _child(node: yaml.Node | None, key: str | int) -> tuple[yaml.Node, yaml.Node] | None:
    """(node marking the position, child node) for ``key`` under ``node``."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == str(key):
                return key_node, value_node
        return None
    if isinstance(node, yaml.SequenceNode) and isinstance(key, int) and 0 <= key < len(node.value):
        child: yaml.Node = node.value[key]
        return child, child
    return None


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """Count values as the constructor would produce them: shared (aliased) nodes count each time."""
    known = memo.get(id(node))
    if known is not None:
        return known
    memo[id(node)] = MAX_EXPANDED_NODES + 1  # a cycle counts as too big
    total = 1
    if isinstance(node, yaml.SequenceNode):
        for item in node.value:
            total += _expanded_size(item, memo)
            if total > MAX_EXPANDED_NODES:
                break
    elif isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            total += _expanded_size(key_node, memo) + _expanded_size(value_node, memo)
            if total > MAX_EXPANDED_NODES:
                break
    memo[id(node)] = total
    return total
