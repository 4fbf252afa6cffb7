"""``/ops insights`` over signed HTTP to a running opsbot: figures in the channel, the chart in its thread."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

from PIL import Image

from bot.audit.events import EventType
from bot.store.database import Database
from bot.store.models import utcnow
from bot.watch.insights_chart import DEPLOY, FAILURE, ChartLayout
from fakes.slack import FakeSlackApi
from tests.insights_support import Log
from tests.integration.slack_support import CHANNEL, latest_message, migrated, serve_touch_catalog

REQUESTER = "U0REQ"


def seed_two_days(database_url: str) -> None:
    """The day before yesterday a good deploy; yesterday one that failed, healed by a rollback 30 minutes later.

    Exactly 48 h and 24 h ago: those are always the two days before today, whatever the hour now.
    """
    now = utcnow()
    database = Database(migrated(database_url))
    try:
        log = Log(database)
        day = timedelta(days=1)
        log.run("deploy", now - 2 * day - timedelta(minutes=10), now - 2 * day, EventType.SUCCEEDED, service="svc")
        log.run("deploy", now - day - timedelta(minutes=10), now - day, EventType.FAILED, service="svc")
        log.run("rollback", now - day + timedelta(minutes=20), now - day + timedelta(minutes=30), EventType.SUCCEEDED, service="svc")
    finally:
        database.dispose()


def bars(png: bytes, days: int) -> list[tuple[int, int, int]]:
    """The colour at the foot of each day's bar, for the days that have one."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    layout = ChartLayout(days)
    assert (image.width, image.height) == (layout.width, layout.height)
    feet = [image.getpixel((layout.bar_left(day) + 1, layout.baseline - 1)) for day in range(days)]
    return [foot for foot in feet if foot in (DEPLOY, FAILURE)]


def test_insights_reply_in_the_channel_with_the_chart_uploaded_to_its_thread(
    slack: FakeSlackApi, tmp_path: Path, database_url: str
) -> None:
    seed_two_days(database_url)
    with serve_touch_catalog(slack, tmp_path, database_url) as server:
        response = server.slack_user(slack, REQUESTER).command("insights svc production 7d")
        assert response.status_code == 200

        [upload] = slack.wait_for(lambda: slack.uploads, what="the chart upload")
        server.wait_idle()

    message = latest_message(slack, CHANNEL, containing="Delivery insights")
    text = str(message.blocks)
    assert "Deploys: 1 in 7 days" in text
    assert "Change failure rate: 50 % of 2 changes" in text
    assert "Time to restore: 30 min median over 1 restores" in text
    assert (upload.channel, upload.thread_ts, upload.filename) == (CHANNEL, message.ts, "svc-production-deploys-7d.png")
    assert bars(upload.content, 7) == [DEPLOY, FAILURE]  # the good deploy, then the failed one


def test_a_window_that_is_not_whole_days_is_refused_with_what_is_allowed(slack: FakeSlackApi, tmp_path: Path, sqlite_url: str) -> None:
    with serve_touch_catalog(slack, tmp_path, sqlite_url) as server:
        server.slack_user(slack, REQUESTER).command("insights svc production 36h")
        refusals = slack.wait_for(
            lambda: [reply for reply in slack.ephemerals(user=REQUESTER) if "whole number of days" in reply.text + str(reply.blocks)],
            what="the refusal",
        )
        server.wait_idle()

    assert "like 7d or 28d" in refusals[0].text + str(refusals[0].blocks)
    assert slack.uploads == []
    assert not [message for message in slack.messages(CHANNEL) if "Delivery insights" in message.text]
