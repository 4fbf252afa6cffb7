"""Did-you-mean suggestions for misspelt commands, services and environments."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """The closest known word, if one is close enough to be a likely typo."""
    options = list(choices)
    lowered = word.lower()
    for option in options:
        if option.lower() == lowered:
            return option
    found = difflib.get_close_matches(lowered, options, n=1, cutoff=0.6)
    if found:
        return found[0]
    prefixed = [option for option in options if len(lowered) >= 2 and option.lower().startswith(lowered)]
    return prefixed[0] if len(prefixed) == 1 else None


def known_list(choices: Iterable[str], limit: int = 15) -> str:
    """``a, b, c`` (or ``a, b, … and 12 more``) for error messages."""
    options = sorted(choices)
    if len(options) <= limit:
        return ", ".join(options)
    return ", ".join(options[:limit]) + f", … and {len(options) - limit} more"
