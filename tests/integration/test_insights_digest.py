"""The weekly insights section of a digest with ``insights: true``: in the first digest of each week only."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from bot.audit.events import EventType
from bot.catalog.catalog import Catalog
from bot.catalog.config import Digest
from bot.service_health import ServiceHealth
from bot.store.database import Database
from bot.watch.digest_content import HealthItem
from bot.watch.digests import Digests
from bot.watch.insights_service import Insights
from tests.doubles import FakeClock, RecordingNotifier
from tests.insights_support import Log

MONDAY_9 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # 09:00 in Berlin


def healthy(items: list[HealthItem]) -> list[ServiceHealth]:
    return [ServiceHealth(service=ref.service, env=ref.env, target=target.describe(), state="healthy") for ref, target in items]


def digests_with_insights(catalog: Catalog, database: Database, clock: FakeClock, notifier: RecordingNotifier) -> tuple[Digests, Digest]:
    digest = Digest(channel="C0OPS", timezone="Europe/Berlin", services=["checkout"], envs=["production"], insights=True)
    config = catalog.config.model_copy(update={"channels": catalog.config.channels.model_copy(update={"digests": [digest]})})
    weekly = dataclasses.replace(catalog, config=config)
    insights = Insights(catalog=weekly, database=database, clock=clock)
    return Digests(catalog=weekly, database=database, notifier=notifier, clock=clock, health=healthy, insights=insights), digest


def test_the_first_digest_of_each_week_carries_the_last_seven_days(database: Database, example_catalog: Catalog) -> None:
    log = Log(database)
    log.run("deploy", MONDAY_9 - timedelta(days=2, minutes=5), MONDAY_9 - timedelta(days=2), EventType.SUCCEEDED)  # Saturday
    log.run("deploy", MONDAY_9 - timedelta(days=3, minutes=5), MONDAY_9 - timedelta(days=3), EventType.FAILED)  # Friday
    log.run("deploy", MONDAY_9 - timedelta(days=9), MONDAY_9 - timedelta(days=9) + timedelta(minutes=4), EventType.SUCCEEDED)  # week before
    clock, notifier = FakeClock(MONDAY_9), RecordingNotifier()
    digests, digest = digests_with_insights(example_catalog, database, clock, notifier)

    digests.post(digest)
    clock.advance(timedelta(days=1))
    digests.post(digest)  # Tuesday: the week already had its section
    clock.advance(timedelta(days=6))
    digests.post(digest)  # the next Monday

    monday, tuesday, next_monday = ("\n".join(post.message.sections) for post in notifier.posts)
    assert "*Delivery, last 7 days (checkout/production)*" in monday
    assert "Deploys: 1 in 7 days" in monday and "(= 0 % vs the previous 7 days, 1 then)" in monday
    assert "Change failure rate: 50 % of 2 changes (was 0 %)" in monday
    assert "Delivery, last 7 days" not in tuesday
    assert "Delivery, last 7 days" in next_monday and "Deploys: 0 in 7 days" in next_monday
