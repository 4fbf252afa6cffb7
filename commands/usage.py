"""Usage lines (``deploy {service} {version} [to {env}]``) as patterns to match words against."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Word:
    """A literal word the user types, like ``to`` or ``--reason``."""

    text: str


@dataclass(frozen=True)
class Slot:
    """A place for one parameter value."""

    name: str


@dataclass(frozen=True)
class Group:
    """An optional part: ``[to {env}]``."""

    elements: tuple[Element, ...]


Element = Word | Slot | Group

_TOKEN = re.compile(r"\[|\]|\{[a-z_][a-z0-9_]*\}|[^\s\[\]{}]+|\S")


class UsageSyntaxError(ValueError):
    """A runbook's usage line itself is malformed (reported by ``opsbot validate``)."""


@lru_cache(maxsize=512)
def compile_usage(usage: str) -> tuple[Element, ...]:
    """Elements after the command name; raises ``UsageSyntaxError`` for bad brackets."""
    pieces = _TOKEN.findall(usage)
    if not pieces:
        raise UsageSyntaxError("usage is empty")
    elements, position = _parse(pieces, 1, depth=0)
    if position != len(pieces):
        raise UsageSyntaxError(f"unexpected {pieces[position]!r} in usage")
    return tuple(elements)


def slots(elements: tuple[Element, ...]) -> list[str]:
    """Every parameter name in the usage, in order."""
    found: list[str] = []
    for element in elements:
        if isinstance(element, Slot):
            found.append(element.name)
        elif isinstance(element, Group):
            found.extend(slots(element.elements))
    return found


def required_slots(elements: tuple[Element, ...]) -> list[str]:
    """Parameter names outside any optional group."""
    return [element.name for element in elements if isinstance(element, Slot)]


def _parse(pieces: list[str], position: int, depth: int) -> tuple[list[Element], int]:
    elements: list[Element] = []
    while position < len(pieces):
        piece = pieces[position]
        if piece == "[":
            inner, position = _parse(pieces, position + 1, depth + 1)
            if position >= len(pieces) or pieces[position] != "]":
                raise UsageSyntaxError("a [ is not closed")
            if not inner:
                raise UsageSyntaxError("an optional part [] is empty")
            elements.append(Group(tuple(inner)))
            position += 1
        elif piece == "]":
            if depth == 0:
                raise UsageSyntaxError("a ] has no matching [")
            return elements, position
        elif piece.startswith("{"):
            if not piece.endswith("}"):
                raise UsageSyntaxError(f"bad placeholder {piece!r}; use {{name}} with lower_snake_case")
            elements.append(Slot(piece[1:-1]))
            position += 1
        elif piece in "{}":
            raise UsageSyntaxError(f"bad placeholder near {piece!r}; use {{name}} with lower_snake_case")
        else:
            elements.append(Word(piece.lower()))
            position += 1
    return elements, position
