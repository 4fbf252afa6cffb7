"""The insights service: read the span's records in SQL once, then compute every target's figures in Python.

Used by ``/ops insights``, ``opsbot insights``, the digest's weekly section and the ``/metrics``
gauges. One read covers the previous window's start to now, so the current and previous windows,
and the per-target and overall figures, all come from the same three queries.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.catalog.catalog import Catalog
from bot.errors import UsageError
from bot.metrics import record_insights
from bot.store import insights as insights_store
from bot.store.database import Database
from bot.watch.insights import (
    ALL,
    CommitTimes,
    Definitions,
    InsightsReport,
    Records,
    TargetInsights,
    figures,
    merge,
    percentile,
    split,
    windows,
)

MAX_WINDOW_DAYS = 366


class Insights:
    """Delivery insights for the catalog's services, from the audit log."""

    def __init__(
        self, *, catalog: Catalog, database: Database, clock: Callable[[], datetime], commit_times: CommitTimes | None = None
    ) -> None:
        self._catalog = catalog
        self._database = database
        self._clock = clock
        self._commit_times = commit_times
        settings = catalog.config.insights
        self.definitions = Definitions(
            deploy_runbooks=frozenset(settings.deploy_runbooks),
            rollback_runbooks=frozenset(settings.rollback_runbooks),
            rollback_within=settings.rollback_within,
        )

    @property
    def default_days(self) -> int:
        return self._catalog.config.insights.window.days

    @property
    def default_zone(self) -> str:
        return self._catalog.config.insights.timezone

    def report(
        self, *, service: str | None = None, env: str | None = None, days: int | None = None, zone: str | None = None
    ) -> InsightsReport:
        """Figures for ``service``/``env`` (None: all) over ``days`` whole days in ``zone``, and the window before.

        Raises ``UsageError`` for a service, env, window or time zone it cannot use.
        """
        days = self.default_days if days is None else days
        zone = zone or self.default_zone
        self._check(service, env, days, zone)
        now = self._clock()
        current, previous = windows(now, days, zone)
        with self._database.reading() as session:
            since, until = previous.start, now + timedelta(microseconds=1)
            records = Records(
                runs=insights_store.run_ends(
                    session, since=since, until=until, service=service, env=env, with_params=self._commit_times is not None
                ),
                incidents=insights_store.incident_marks(session, since=since, until=until, service=service, env=env),
                approvals=insights_store.approval_waits(session, since=since, until=until, service=service, env=env),
            )

        def both(target_service: str, target_env: str, mine: Records) -> TargetInsights:
            return TargetInsights(
                target_service,
                target_env,
                figures(mine, current, self.definitions, commit_times=self._commit_times),
                figures(mine, previous, self.definitions, commit_times=self._commit_times),
            )

        def pooled(target_service: str, target_env: str, parts: list[TargetInsights]) -> TargetInsights:
            return TargetInsights(
                target_service,
                target_env,
                merge([part.current for part in parts], current.days),
                merge([part.previous for part in parts], previous.days),
            )

        # Each target's figures are computed once; a service's and the overall ones pool them (see merge).
        # Targets that left the catalog still count in the overall figures.
        nothing = Records((), (), ())
        pairs = self._targets(service, env)
        per_target = split(records)
        computed = {key: both(*key, per_target.get(key, nothing)) for key in dict.fromkeys([*pairs, *per_target])}
        targets = tuple(computed[key] for key in pairs)
        overall = targets[0] if service is not None and env is not None else pooled(service or ALL, env or ALL, list(computed.values()))
        names = dict.fromkeys(name for name, _ in pairs)
        services = (
            (overall,)
            if service is not None
            else tuple(pooled(name, env or ALL, [item for key, item in computed.items() if key[0] == name]) for name in names)
        )
        return InsightsReport(current, previous, overall, targets, services, lead_time_note=self._lead_time_note(service))

    def _targets(self, service: str | None, env: str | None) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        for name, entry in self._catalog.config.services.items():
            if service is not None and name != service:
                continue
            found.extend((name, target_env) for target_env in entry.environments if env is None or target_env == env)
        return found

    def _check(self, service: str | None, env: str | None, days: int, zone: str) -> None:
        services = self._catalog.config.services
        if service is not None and service not in services:
            raise UsageError(f"Unknown service {service!r}. Known services: {', '.join(services)}.")
        if env is not None:
            known = (
                {name for entry in services.values() for name in entry.environments}
                if service is None
                else set(services[service].environments)
            )
            if env not in known:
                raise UsageError(f"Unknown environment {env!r}; known: {', '.join(sorted(known))}.")
        if not 1 <= days <= MAX_WINDOW_DAYS:
            raise UsageError(f"The window must be between 1 and {MAX_WINDOW_DAYS} whole days, like 7d or 28d; got {days} days.")
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise UsageError(f"Unknown time zone {zone!r}; use an IANA name like Europe/Berlin.") from error

    def _lead_time_note(self, service: str | None) -> str:
        services = self._catalog.config.services
        sourced = [name for name, entry in services.items() if entry.source is not None and (service is None or name == service)]
        if not sourced:
            return "Lead time for changes is not shown: no service here has `source:` in the catalog."
        if self._commit_times is None:
            return (
                f"Lead time for changes is not shown: `source:` is set for {', '.join(sourced)}, but the tag's commit time "
                "comes from GitHub, which this opsbot does not query (no network lookups are made for insights)."
            )
        return ""


def refresh_gauges(insights: Insights) -> str:
    """Set the ``/metrics`` gauges from the default window's figures: every target, and ``*`` for all."""
    report = insights.report()
    for item in (report.overall, *report.targets):
        now = item.current
        record_insights(
            item.service,
            item.env,
            deploys=now.deploys,
            change_failure_ratio=now.change_failure_rate,
            time_to_restore=now.time_to_restore,
            approval_wait=(percentile(now.approval_waits, 50), percentile(now.approval_waits, 90)),
            run_duration=(percentile(now.run_durations, 50), percentile(now.run_durations, 90)),
        )
    return f"{len(report.targets) + 1} targets"
