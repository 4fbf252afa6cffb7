"""Log records captured while a test runs, for tests that assert what opsbot told its operators."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator


class LogRecords(logging.Handler):
    """Every record any logger of this process emits while attached (servers under test run in-process)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def saw(self, text: str) -> bool:
        return any(text in record.getMessage() for record in list(self.records))

    def errors(self) -> list[str]:
        return [f"{r.name}: {r.getMessage()}" for r in self.records if r.levelno >= logging.ERROR]

    def tracebacks(self) -> list[str]:
        """Warnings and errors that carry a traceback (a DEBUG-level one is for whoever turns DEBUG on)."""
        return [f"{r.name} {r.levelname}: {r.getMessage()}" for r in self.records if r.exc_info and r.levelno >= logging.WARNING]


@contextlib.contextmanager
def captured_logs() -> Iterator[LogRecords]:
    """Attach a ``LogRecords`` to the root logger for the block."""
    handler = LogRecords()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
