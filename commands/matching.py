"""Match a command's positional words against its usage pattern.

Backtracking over optional groups keeps usage lines natural to write
(``rollback {service} [in {env}] [to {revision}]``) without a grammar DSL. When nothing
matches, ``Mismatch`` says how far the words got and what was expected there, so the
error can be precise ("expected 'to' or the end after 'production'").
"""

from __future__ import annotations

from dataclasses import dataclass, field

from commands.tokenize import Token
from commands.usage import Element, Group, Slot, Word

MAX_MATCH_STEPS = 20_000


@dataclass
class Mismatch:
    """The furthest point any attempt reached, for the error message."""

    position: int = -1
    expected: set[str] = field(default_factory=set)

    def note(self, position: int, expected: str) -> None:
        if position > self.position:
            self.position, self.expected = position, {expected}
        elif position == self.position:
            self.expected.add(expected)


def match_usage(
    elements: tuple[Element, ...], tokens: list[Token], prebound: frozenset[str], keywords: frozenset[str] = frozenset()
) -> tuple[dict[str, str] | None, Mismatch]:
    """Bind slots to tokens; slots in ``prebound`` (given as ``key=value``) take no word.

    An unquoted token in ``keywords`` (the usage's own words) is never a slot's value: in
    ``deploy checkout in`` the ``in`` is a word of the command, not the version, so the version is
    missing. A value that really is such a word is typed in quotes.
    """
    mismatch = Mismatch()
    budget = [MAX_MATCH_STEPS]
    work: list[Element] = list(elements)
    result = _match(work, 0, _Words(tokens, keywords), 0, {}, prebound, mismatch, budget)
    return result, mismatch


@dataclass(frozen=True)
class _Words:
    """The tokens being matched and the words that may not be values."""

    tokens: list[Token]
    keywords: frozenset[str]

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, position: int) -> Token:
        return self.tokens[position]

    def can_be_value(self, position: int) -> bool:
        token = self.tokens[position]
        return token.quoted or token.text.lower() not in self.keywords


def _match(
    elements: list[Element],
    index: int,
    tokens: _Words,
    position: int,
    bound: dict[str, str],
    prebound: frozenset[str],
    mismatch: Mismatch,
    budget: list[int],
) -> dict[str, str] | None:
    budget[0] -= 1
    if budget[0] < 0:
        return None
    if index == len(elements):
        if position == len(tokens):
            return dict(bound)
        mismatch.note(position, "the end of the command")
        return None
    element = elements[index]
    if isinstance(element, Word):
        token = tokens[position] if position < len(tokens) else None
        if token is not None and not token.quoted and token.text.lower() == element.text:
            return _match(elements, index + 1, tokens, position + 1, bound, prebound, mismatch, budget)
        mismatch.note(position, repr(element.text))
        return None
    if isinstance(element, Slot):
        if element.name in prebound:
            return _match(elements, index + 1, tokens, position, bound, prebound, mismatch, budget)
        if position < len(tokens) and tokens.can_be_value(position):
            bound[element.name] = tokens[position].text
            found = _match(elements, index + 1, tokens, position + 1, bound, prebound, mismatch, budget)
            if found is not None:
                return found
            del bound[element.name]
            return None
        mismatch.note(position, f"<{element.name}>")
        return None
    return _match_group(element, elements, index, tokens, position, bound, prebound, mismatch, budget)


def _match_group(
    group: Group,
    elements: list[Element],
    index: int,
    tokens: _Words,
    position: int,
    bound: dict[str, str],
    prebound: frozenset[str],
    mismatch: Mismatch,
    budget: list[int],
) -> dict[str, str] | None:
    rest = elements[index + 1 :]
    group_slots = [element.name for element in group.elements if isinstance(element, Slot)]
    if not group_slots or not all(name in prebound for name in group_slots):
        expanded = list(group.elements) + rest
        found = _match(expanded, 0, tokens, position, dict(bound), prebound, mismatch, budget)
        if found is not None:
            return found
    return _match(rest, 0, tokens, position, bound, prebound, mismatch, budget)
