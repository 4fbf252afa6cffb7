"""SQL for replay protection: remember each signed request once, across every replica.

Slack signs ``v0:{timestamp}:{body}`` and Bolt accepts a signature for 5 minutes, so an
intercepted request could be sent again inside that window, to any replica. The first
replica to insert its digest acts on it; every other copy finds the row and is dropped.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from bot.store.inserts import insert_new
from bot.store.models import SeenRequestRow

KEEP_FOR = timedelta(minutes=10)  # longer than Slack's 5-minute signature window


def first_time_seen(session: Session, digest: str, now: datetime) -> bool:
    """True the first time ``digest`` is seen (it is recorded); False for a replay."""
    return insert_new(session, SeenRequestRow, {"digest": digest, "seen_at": now}, key=["digest"])


def forget_old(session: Session, now: datetime) -> int:
    """Drop digests older than any signature Slack would still accept."""
    result = session.execute(delete(SeenRequestRow).where(SeenRequestRow.seen_at < now - KEEP_FOR))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
