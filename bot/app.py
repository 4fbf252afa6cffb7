"""Wiring: build every part of a running opsbot from settings, in one visible place."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from bot.backends import Backends
from bot.builtin_handlers import install_builtins
from bot.catalog import Catalog, load_catalog
from bot.digest_handlers import install_digest_builtins
from bot.groups import ExternalGroupResolver, GroupDirectory
from bot.maintenance import Maintenance
from bot.notifier import Notifier
from bot.operations import Operations
from bot.runner import Runner, RunnerTiming
from bot.scheduling.scheduler import SlotScheduler, build_scheduler
from bot.settings import Settings
from bot.store.database import Database
from bot.store.models import utcnow


@dataclass
class OpsbotApp:
    """Everything a front end needs; ``close`` stops background work and the pool."""

    settings: Settings
    catalog: Catalog
    database: Database
    groups: GroupDirectory
    backends: Backends
    runner: Runner
    operations: Operations
    maintenance: Maintenance
    scheduler: SlotScheduler | None = None

    def start_background(self) -> None:
        self.maintenance.sweep()
        self.maintenance.start()
        if self.scheduler is not None:
            self.scheduler.start()

    def close(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown()
        self.maintenance.stop()
        self.runner.shutdown(wait=True)
        self.database.dispose()


def build_app(
    settings: Settings,
    *,
    notifier: Notifier,
    catalog: Catalog | None = None,
    external_groups: ExternalGroupResolver | None = None,
    clock: Callable[[], datetime] = utcnow,
    timing: RunnerTiming | None = None,
    maintenance_interval: float | None = None,
) -> OpsbotApp:
    """Load the catalog (unless given), connect the database, and wire the parts together.

    ``timing`` and ``maintenance_interval`` default to the settings (``OPSBOT_RUN_LEASE_SECONDS``,
    ``OPSBOT_MAINTENANCE_SECONDS``); tests pass their own.
    """
    loaded = catalog or load_catalog(settings.config_path, settings.runbooks_dir)
    database = Database(settings.database_url.get_secret_value())
    groups = GroupDirectory(loaded.config, external_groups)
    backends = Backends(loaded.config)
    runner = Runner(
        database=database,
        catalog=loaded,
        backends=backends,
        notifier=notifier,
        runner_id=settings.instance_id,
        threads=settings.runner_threads,
        max_backlog=settings.max_backlog,
        clock=clock,
        timing=timing or RunnerTiming.for_lease(settings.run_lease_seconds),
    )
    operations = Operations(
        catalog=loaded, database=database, groups=groups, backends=backends, runner=runner, notifier=notifier, clock=clock
    )
    install_builtins(operations)
    work = install_digest_builtins(operations)
    scheduler = (
        build_scheduler(loaded.config, database=database, owner=settings.instance_id, digests=work.digests, watch=work.watch)
        if settings.run_scheduler
        else None
    )
    interval = settings.maintenance_seconds if maintenance_interval is None else maintenance_interval
    maintenance = Maintenance(database=database, runner=runner, refresh=operations.refresh, clock=clock, interval=interval)
    return OpsbotApp(
        settings=settings,
        catalog=loaded,
        database=database,
        groups=groups,
        backends=backends,
        runner=runner,
        operations=operations,
        maintenance=maintenance,
        scheduler=scheduler,
    )
