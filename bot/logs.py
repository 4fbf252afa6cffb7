"""Structured logs: one JSON object per line, secrets scrubbed before anything is written.

Why scrub in the formatter and not at call sites: a token can reach a log through an
exception message or a library's debug output; the formatter sees every record.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from bot.redaction import redact

request_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("opsbot_request_context", default=None)
"""Fields (request id, user, runbook) added to every log line emitted while handling one request."""


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add ``fields`` (empty ones skipped) to every line logged in this block on this thread, then restore.

    Worker-pool threads run one request after another: resetting on exit keeps one request's
    fields off the next one's lines.
    """
    token = request_context.set({**(request_context.get() or {}), **_present(fields)})
    try:
        yield
    finally:
        request_context.reset(token)


def bind_log_fields(**fields: Any) -> None:
    """Add fields learnt part-way through (the new request's id) to the enclosing ``log_context``."""
    current = request_context.get()
    if current is not None:
        current.update(_present(fields))


_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message"}  # uvicorn's ANSI-coloured copy


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "event", ...extra fields}`` with secrets redacted."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        entry.update(request_context.get() or {})
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(redact(entry), default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Human-readable lines for a terminal, still scrubbed."""

    def format(self, record: logging.LogRecord) -> str:
        return str(redact(super().format(record)))


def configure_logging(level: str = "INFO", fmt: str = "json", stream: Any = None) -> None:
    """Install one handler on the root logger (idempotent)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # alembic: /readyz reads the schema revision, and alembic logs two INFO lines each time.
    for noisy in ("urllib3", "kubernetes", "botocore", "boto3", "slack_bolt", "slack_sdk", "apscheduler", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.getLevelName(level), logging.WARNING))
    # Said once in opsbot's words by the caller (the token check, the API error), so the library's
    # own line before raising only doubles it.
    logging.getLogger("slack_sdk.web.base_client").setLevel(logging.CRITICAL)


def _present(fields: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None and value != ""}


class ThrottledWarning:
    """At most ``per_minute`` WARNING lines a minute for one recurring event; the next line counts the rest.

    For events an outsider can trigger at will (forged requests, floods of commands): each
    one should be visible in the logs, but a flood must not become a flood of log lines.
    Not thread-safe: call it from one thread (the event loop).
    """

    def __init__(self, log: logging.Logger, *, per_minute: int = 10, clock: Callable[[], float] = time.monotonic) -> None:
        self._log = log
        self._per_minute = per_minute
        self._clock = clock
        self._window_start = clock()
        self._logged = 0
        self._unlogged = 0

    def warn(self, message: str, *args: object) -> None:
        now = self._clock()
        if now - self._window_start >= 60:
            self._window_start, self._logged = now, 0
        if self._logged >= self._per_minute:
            self._unlogged += 1
            return
        self._logged += 1
        unlogged, self._unlogged = self._unlogged, 0
        more = f" ({unlogged} more since the previous line)" if unlogged else ""
        self._log.warning(message + "%s", *args, more)
