"""Audit event types and the event record, with secrets redacted before anything is hashed."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class EventType(StrEnum):
    """Every kind of audit event; the names are the log's vocabulary, keep them stable."""

    COMMAND_RECEIVED = "command_received"
    COMMAND_REJECTED = "command_rejected"
    DENIED = "denied"
    APPROVAL_REQUESTED = "approval_requested"
    APPROVAL_GIVEN = "approval_given"
    APPROVAL_REFUSED = "approval_refused"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    CANCEL_REQUESTED = "cancel_requested"
    STARTED = "started"
    STEP_STARTED = "step_started"
    STEP_PROGRESS = "step_progress"
    STEP_FINISHED = "step_finished"
    STEP_FAILED = "step_failed"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ROLLBACK_STARTED = "rollback_started"
    ROLLED_BACK = "rolled_back"
    INTERRUPTED = "interrupted"
    LOCKED = "locked"
    UNLOCKED = "unlocked"
    LOCK_REFUSED = "lock_refused"
    INCIDENT_OPENED = "incident_opened"
    INCIDENT_ACKNOWLEDGED = "incident_acknowledged"
    INCIDENT_RESOLVED = "incident_resolved"
    DIGEST_POSTED = "digest_posted"
    REPLAY_REJECTED = "replay_rejected"


@dataclass(frozen=True)
class AuditEvent:
    """One thing that happened. Empty strings, not None, for absent text fields."""

    event: EventType
    actor_id: str = ""
    actor_name: str = ""
    channel: str = ""
    request_id: int | None = None
    runbook: str = ""
    service: str = ""
    env: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    outcome: str = ""
    details: dict[str, Any] = field(default_factory=dict)


_SECRET_KEY = re.compile(r"token|secret|password|passwd|credential|api[_-]?key|private[_-]?key|authorization", re.I)
_SECRET_VALUE = re.compile(r"xox[abposr]-[A-Za-z0-9-]+|xapp-[A-Za-z0-9-]+|AKIA[0-9A-Z]{16}|-----BEGIN [A-Z ]*PRIVATE KEY-----")
REDACTED = "[redacted]"


def redact(value: Any) -> Any:
    """A copy with secret-looking keys and token-shaped strings replaced by ``[redacted]``."""
    if isinstance(value, dict):
        return {str(key): REDACTED if _SECRET_KEY.search(str(key)) else redact(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    if isinstance(value, str):
        return _SECRET_VALUE.sub(REDACTED, value)
    return value
