"""Runs whose process died: any replica's sweep marks them ``interrupted`` and frees their target.

A run renews its lease while it lives; a lease that lapsed means the process that held it is
gone (a crash, a hard kill, a lost node). Nobody can know how far it got, so the request is
not retried: it is ended, audited, and the people are told to look at the target first.
"""

from __future__ import annotations

import logging
from datetime import datetime

from bot.audit.events import SYSTEM, EventType
from bot.audit.factories import request_event
from bot.metrics import record_run
from bot.store import audit as audit_store
from bot.store import locks as lock_store
from bot.store import requests as request_store
from bot.store.database import Database
from bot.store.models import RequestRow
from bot.store.states import RequestState

logger = logging.getLogger(__name__)

INTERRUPTED_RESULT = (
    "the bot process running it stopped before it finished; the target may be half-changed: check it with `status` before acting again"
)


def interrupt_abandoned(database: Database, request_id: int, now: datetime) -> RequestRow | None:
    """running → interrupted (one conditional UPDATE), lock released, audited; the fresh row, or None if it was not ours to end."""
    with database.transaction() as session:
        row = request_store.get_request(session, request_id)
        if row is None or not request_store.transition(
            session, request_id, expected=[RequestState.RUNNING], new=RequestState.INTERRUPTED, now=now,
            finished_at=now, result=INTERRUPTED_RESULT, lease_expires_at=None,
        ):  # fmt: skip
            return None
        lock_store.release_for_request(session, service=row.service, env=row.env, request_id=request_id)
        audit_store.append_events(
            session, [request_event(row, EventType.INTERRUPTED, SYSTEM, outcome="interrupted", runner=row.runner_id or "")], now
        )
        fresh = request_store.get_request(session, request_id)
    assert fresh is not None
    seconds = (now - row.started_at).total_seconds() if row.started_at is not None else 0.0
    record_run(row.runbook, str(RequestState.INTERRUPTED), seconds)
    logger.warning(
        "request #%s interrupted: runner %s stopped renewing its lease",
        request_id, row.runner_id or "?", extra={"outcome": "interrupted", "runbook": row.runbook, "user": row.requester_id},
    )  # fmt: skip
    return fresh
