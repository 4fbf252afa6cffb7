"""Structured logs: one JSON object per line, secrets scrubbed before anything is written.

Why scrub in the formatter and not at call sites: a token can reach a log through an
exception message or a library's debug output; the formatter sees every record.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from bot.audit.events import redact

request_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("opsbot_request_context", default=None)
"""Fields (request id, user, runbook) added to every log line emitted while handling one request."""

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


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
    for noisy in ("urllib3", "kubernetes", "botocore", "boto3", "slack_bolt", "slack_sdk", "apscheduler"):
        logging.getLogger(noisy).setLevel(max(logging.getLevelName(level), logging.WARNING))
