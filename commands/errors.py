"""The grammar's one error: the text did not parse, with what was wrong and the usage line."""

from __future__ import annotations


class UsageError(Exception):
    """``user_message`` says what was wrong and what is allowed; ``usage`` is the command's usage line."""

    def __init__(self, user_message: str, *, usage: str | None = None) -> None:
        super().__init__(user_message)
        self.user_message = user_message
        self.usage = usage
