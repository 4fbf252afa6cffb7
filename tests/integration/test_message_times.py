"""Times in refusals read in the deployment's zone (the config's ``timezone``), like the request message.

An approver in New York who is told "expired at 14:10 UTC" next to a message saying
"expires 09:10 EST" has to do arithmetic at 3 a.m.; every time opsbot prints is in one zone.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.audit.events import Actor
from bot.errors import ApprovalExpired
from bot.requests.approvals import approve
from bot.runs.claims import held_by_text
from bot.serve.wiring import OpsbotCore
from bot.store.migrate import upgrade
from bot.store.models import TargetLockRow
from bot.timefmt import use_zone
from tests.doubles import FakeClock, make_touch_app
from tests.integration.test_approvals_sql import request_touch, shown

ZONE = "America/New_York"


@pytest.fixture
def new_york() -> Iterator[ZoneInfo]:
    use_zone(ZONE)
    try:
        yield ZoneInfo(ZONE)
    finally:
        use_zone("UTC")


def test_the_expiry_refusal_shows_the_deployments_time_zone(tmp_path: Path, database_url: str, new_york: ZoneInfo) -> None:
    clock = FakeClock()
    app: OpsbotCore
    app, _ = make_touch_app(tmp_path, database_url, clock)
    use_zone(ZONE)  # as the config's ``timezone: America/New_York`` does when the catalog loads
    upgrade(app.database)
    try:
        row = request_touch(app)
        clock.advance(timedelta(minutes=10, seconds=1))
        with pytest.raises(ApprovalExpired) as caught:
            approve(app.database, app.groups, request_id=row.id, actor=Actor("U0A00", "a0"), shown=shown(row), now=clock())
    finally:
        app.close()
    assert row.expires_at is not None
    local = row.expires_at.astimezone(new_york)
    assert f"expired at {local.strftime('%H:%M')} E" in str(caught.value), str(caught.value)
    assert "UTC" not in str(caught.value)


def test_a_persons_lock_names_its_end_in_the_deployments_time_zone(new_york: ZoneInfo) -> None:
    now = datetime(2026, 12, 5, 14, 0, tzinfo=UTC)
    lock = TargetLockRow(
        service="checkout", env="production", kind="manual", request_id=None, runbook="", holder_id="U0A01",
        holder_name="alice", reason="db migration", acquired_at=now - timedelta(minutes=3), expires_at=now + timedelta(hours=1),
    )  # fmt: skip
    text = held_by_text(lock, now)
    assert "until 10:00 EST" in text, text
    assert "UTC" not in text
