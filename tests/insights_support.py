"""Writing audit events at chosen times, as opsbot writes them, for the insights tests."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from bot.audit.events import AuditEvent, EventType
from bot.store import audit as audit_store
from bot.store.database import Database


class Log:
    """Writes audit events at chosen times, as opsbot writes them."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.next_request = 1

    def event(self, when: datetime, event: EventType, *, request_id: int | None = None, runbook: str = "", service: str = "checkout",
              env: str = "production", outcome: str = "", **params: Any) -> None:  # fmt: skip
        item = AuditEvent(event=event, request_id=request_id, runbook=runbook, service=service, env=env, outcome=outcome, params=params)
        with self.database.transaction() as session:
            audit_store.append_events(session, [item], when)

    def run(self, runbook: str, started: datetime, ended: datetime, end: EventType, *, service: str = "checkout", env: str = "production",
            asked: datetime | None = None, rollback_started: datetime | None = None, version: str = "1.0.0") -> int:  # fmt: skip
        request_id = self.next_request
        self.next_request += 1
        common: dict[str, Any] = {"request_id": request_id, "runbook": runbook, "service": service, "env": env, "version": version}
        if asked is not None:
            self.event(asked, EventType.APPROVAL_REQUESTED, outcome="pending", **common)
        self.event(started, EventType.APPROVED, outcome="approved", **common)
        self.event(started, EventType.STARTED, outcome="started", **common)
        self.event(started + timedelta(seconds=1), EventType.STEP_STARTED, outcome="started", **common)
        if rollback_started is not None:
            self.event(rollback_started, EventType.ROLLBACK_STARTED, outcome="started", **common)
        self.event(ended, end, outcome=str(end), **common)
        return request_id
