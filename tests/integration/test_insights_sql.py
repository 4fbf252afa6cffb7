"""Delivery insights from a seeded audit log, on SQLite and PostgreSQL: every figure computed by hand."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from bot.audit.events import EventType
from bot.catalog.catalog import Catalog
from bot.errors import UsageError
from bot.metrics import exposition
from bot.store.database import Database
from bot.watch.insights import percentile
from bot.watch.insights_service import Insights, refresh_gauges
from bot.watch.scheduler import SlotScheduler, insights_gauges_job
from tests.insights_support import Log

NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
"""Current 7-day window (UTC): Mon 9 Mar 00:00 → now; previous: Mon 2 Mar 00:00 → 9 Mar 00:00."""


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


def seed(log: Log) -> None:
    """The story the figures are checked against (all times UTC)."""
    # previous window: one good deploy
    log.run("deploy", at(5, 10), at(5, 10, 10), EventType.SUCCEEDED)
    # current window, checkout/production
    log.run("deploy", at(10, 9, 10), at(10, 9, 15), EventType.SUCCEEDED, asked=at(10, 9))  # R1: ok, waited 10 min, ran 5 min
    log.run("deploy", at(11, 10), at(11, 10, 5), EventType.FAILED)  # R2: failed at 10:05
    log.run("rollback", at(11, 10, 20), at(11, 10, 30), EventType.SUCCEEDED)  # R3: heals R2 (25 min); R1 is > 1 h before
    log.run("deploy", at(12, 14), at(12, 14, 8), EventType.ROLLED_BACK, rollback_started=at(12, 14, 6))  # R4: restored in 2 min
    log.run("deploy", at(13, 8), at(13, 8, 4), EventType.SUCCEEDED)  # R5: ok …
    log.run("rollback", at(13, 8, 30), at(13, 8, 40), EventType.SUCCEEDED)  # R6: … but rolled back 26 min later (10 min)
    log.event(at(14, 2), EventType.INCIDENT_OPENED, outcome="open")
    log.event(at(14, 2, 45), EventType.INCIDENT_RESOLVED, outcome="resolved")  # 45 min
    log.event(at(14, 5), EventType.FAILED, request_id=99, runbook="deploy", outcome="not_started")  # never started: no change
    # another target
    log.run("deploy", at(10, 11), at(10, 11, 2), EventType.SUCCEEDED, service="payments", env="staging")


@pytest.fixture
def insights(database: Database, example_catalog: Catalog) -> Insights:
    seed(Log(database))
    return Insights(catalog=example_catalog, database=database, clock=lambda: NOW)


def test_a_targets_figures_match_the_hand_computed_ones(insights: Insights) -> None:
    report = insights.report(service="checkout", env="production", days=7)
    now, before = report.overall.current, report.overall.previous

    assert (now.deploys, now.changes, now.failed_changes) == (2, 4, 3)  # R1, R5 | R1 R2 R4 R5 | R2 R4 R5
    assert now.change_failure_rate == 0.75
    assert now.deploys_per_day == pytest.approx(2 / 7)
    assert now.daily_deploys == (0, 1, 0, 0, 1, 0, 0)  # Tue 10 and Fri 13
    assert now.daily_failures == (0, 0, 1, 1, 1, 0, 0)
    # restores by start: R2 failed 1500 s, R4 auto 120 s, R6 rollback 600 s, incident 2700 s
    assert [item.seconds for item in now.restores] == [1_500, 120, 600, 2_700]
    assert [item.cause for item in now.restores] == ["failed deploy", "automatic rollback", "rollback", "incident"]
    assert now.time_to_restore == 600  # nearest rank: 2nd of 120, 600, 1500, 2700
    assert now.approval_waits == (600.0,)
    assert sorted(now.run_durations) == [240, 300, 300, 480, 600, 600]
    assert (percentile(now.run_durations, 50), percentile(now.run_durations, 90)) == (300, 600)
    assert (before.deploys, before.changes, before.failed_changes, before.change_failure_rate) == (1, 1, 0, 0.0)
    assert before.run_durations == (600.0,)


def test_the_overall_figures_add_up_every_target(insights: Insights) -> None:
    report = insights.report(days=7)

    assert (report.overall.current.deploys, report.overall.current.changes) == (3, 5)
    payments = next(item for item in report.targets if item.label == "payments/staging")
    assert (payments.current.deploys, payments.current.change_failure_rate) == (1, 0.0)
    assert {item.label for item in report.targets} >= {"checkout/production", "checkout/staging", "search/production"}
    assert "Lead time for changes is not shown" in report.lead_time_note


def test_a_rollback_more_than_rollback_within_after_a_deploy_does_not_blame_it(database: Database, example_catalog: Catalog) -> None:
    log = Log(database)
    log.run("deploy", at(10, 9), at(10, 9, 5), EventType.SUCCEEDED)
    log.run("rollback", at(10, 10, 6), at(10, 10, 10), EventType.SUCCEEDED)  # 61 min after: not this deploy's fault

    now = Insights(catalog=example_catalog, database=database, clock=lambda: NOW).report(service="checkout", env="production", days=7)

    assert (now.overall.current.failed_changes, now.overall.current.restores) == (0, ())


@pytest.mark.parametrize(
    ("zone", "expected_current", "expected_day"),
    [
        ("UTC", 1, 0),  # 23:59:59 UTC Sun 8 Mar is before the UTC window; 00:00 UTC Mon 9 Mar is day 0
        ("Europe/Berlin", 2, 0),  # both are Mon 9 Mar in Berlin (00:59:59 and 01:00)
        ("America/New_York", 0, 0),  # both are Sun 8 Mar in New York: the previous window
    ],
)
def test_windows_start_at_local_midnight(
    database: Database, example_catalog: Catalog, zone: str, expected_current: int, expected_day: int
) -> None:
    log = Log(database)
    log.run("deploy", at(8, 23, 50), datetime(2026, 3, 8, 23, 59, 59, tzinfo=UTC), EventType.SUCCEEDED)
    log.run("deploy", at(8, 23, 55), at(9, 0), EventType.SUCCEEDED)
    insights = Insights(catalog=example_catalog, database=database, clock=lambda: NOW)

    report = insights.report(service="checkout", env="production", days=7, zone=zone)

    assert report.overall.current.deploys == expected_current
    assert report.overall.previous.deploys == 2 - expected_current
    if expected_current:
        assert report.overall.current.daily_deploys[expected_day] == expected_current


def test_bad_input_is_a_usage_error_naming_what_is_allowed(insights: Insights) -> None:
    cases: list[tuple[Callable[[], object], str]] = [
        (lambda: insights.report(service="nope"), "Known services"),
        (lambda: insights.report(service="search", env="staging"), "known: production"),
        (lambda: insights.report(days=0), "between 1 and 366"),
        (lambda: insights.report(zone="Mars/Olympus"), "IANA"),
    ]
    for call, expected in cases:
        with pytest.raises(UsageError, match=expected):
            call()


def test_the_default_windows_figures_are_gauges_on_metrics(insights: Insights) -> None:
    refresh_gauges(insights)  # what every executor runs every insights.metrics_every

    text = exposition()[0].decode()
    target = 'env="production",service="checkout"'
    assert f"opsbot_insights_deploys{{{target}}} 3.0" in text  # 28 days: R0 on 5 Mar counts now
    assert f"opsbot_insights_change_failure_ratio{{{target}}} 0.6" in text
    assert f"opsbot_insights_time_to_restore_seconds{{{target}}} 600.0" in text
    assert 'opsbot_insights_run_duration_seconds{env="production",quantile="0.9",service="checkout"} 600.0' in text
    assert 'opsbot_insights_deploys{env="*",service="*"} 4.0' in text


def test_every_process_refreshes_the_gauges_in_its_own_slot(insights: Insights, database: Database, example_catalog: Catalog) -> None:
    runs = []
    for owner in ("replica-a/executor-1", "replica-b/executor-1"):
        scheduler = SlotScheduler(database=database, owner=owner, clock=lambda: NOW)
        job = insights_gauges_job(example_catalog.config, insights, owner)
        scheduler.add(job)
        runs.append(scheduler.run_due(job.job_id))

    assert [(run.claimed, run.outcome) for run in runs] == [(True, "9 targets"), (True, "9 targets")]  # 8 targets + all
