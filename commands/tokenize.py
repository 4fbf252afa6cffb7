"""Split command text into words the way a person typing in chat means them.

Chat clients "smarten" quotes (errbot learned this the hard way), so ``“db migration”``
must read as ``"db migration"``. ``key=value`` and ``--key value`` are kept as tokens;
the parser decides what they mean.
"""

from __future__ import annotations

from dataclasses import dataclass

from commands.errors import UsageError

SMART_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "‟": '"', "‘": "'", "’": "'", "‚": "'", "‛": "'"})
MAX_COMMAND_LENGTH = 2_000
MAX_TOKENS = 40


@dataclass(frozen=True)
class Token:
    """A word; ``quoted`` words are never treated as ``key=value`` or literals."""

    text: str
    quoted: bool = False


def tokenize(text: str) -> list[Token]:
    """Words of ``text``; raises ``UsageError`` for an unclosed quote or control characters."""
    if len(text) > MAX_COMMAND_LENGTH:
        raise UsageError(f"That command is {len(text):,} characters long; the limit is {MAX_COMMAND_LENGTH:,}.")
    normalized = text.translate(SMART_QUOTES).replace("\u00a0", " ")
    if any(_is_control(character) for character in normalized):
        raise UsageError("That command contains control characters; type it as plain text.")
    tokens: list[Token] = []
    current: list[str] = []
    quote: str | None = None
    quoted = False
    for character in normalized:
        if quote is not None:
            if character == quote:
                quote = None
            else:
                current.append(character)
        elif character in "\"'":
            quote = character
            # Only a word that starts with a quote is "quoted"; key="a b" stays a key=value pair.
            quoted = quoted or not current
        elif character.isspace():
            if current or quoted:
                tokens.append(Token("".join(current), quoted))
            current, quoted = [], False
        else:
            current.append(character)
    if quote is not None:
        raise UsageError(f'A {quote} quote is not closed. Put quotes around the whole value, like reason="db migration".')
    if current or quoted:
        tokens.append(Token("".join(current), quoted))
    if len(tokens) > MAX_TOKENS:
        raise UsageError(f"That command has {len(tokens)} words; the limit is {MAX_TOKENS}.")
    return tokens


def _is_control(character: str) -> bool:
    code = ord(character)
    return (code < 32 and character not in "\t\n\r") or 0x7F <= code < 0xA0 or character in "\u200b\u2028\u2029\ufeff"
