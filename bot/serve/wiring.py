"""Wiring: build every part of a running opsbot from settings, in one visible place.

Two things are built here. The *core* (``build_core``): catalog, database, policy gate,
board, run engine, post-ack pool, scheduler and sweeps; it lives in each executor process, or
in the serving process itself when there is no executor (tests, the shell). The *serving bot*
(``build_inline_bot``, ``build_ack_only_bot``): the Slack front door and the handoff that takes
its jobs to a core.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from starlette.requests import Request

from bot.api.app import InboundApi
from bot.api.jobs import ApiJob, ApiJobRunner
from bot.api.problems import ApiProblem
from bot.backends import Backends
from bot.catalog.catalog import Catalog, load_catalog, load_commands
from bot.catalog.identity import IdentityMap
from bot.catalog.schedules import interval_trigger
from bot.messages import Notifier
from bot.requests.app_home import AppHome
from bot.requests.approvals import expire_due
from bot.requests.board import RequestBoard
from bot.requests.builtins import BUILTIN_SPECS, BUILTINS_BY_NAME
from bot.requests.clicks import Clicks
from bot.requests.desk import Desk
from bot.requests.front_door import FrontDoor
from bot.requests.gate import Gate
from bot.requests.groups import ExternalGroupResolver, GroupDirectory
from bot.requests.home_surface import HomeSurface
from bot.requests.intake import Intake
from bot.runs.engine import RunEngine, RunnerTiming
from bot.runs.maintenance import Maintenance
from bot.serve.bodies import BodyAbandoned, BodyRefused, read_limited_body
from bot.serve.pool import LocalHandoff, PostAckPool
from bot.serve.worker_handoff import SpreadHandoff
from bot.service_health import ServiceHealth
from bot.settings import Settings
from bot.slack.bolt_app import SlackBot
from bot.slack.jobs import Handoff, Job, JobRunner
from bot.slack.notifier import SlackNotifier, make_web_client
from bot.slack.user_emails import SlackEmails
from bot.slack.usergroups import SlackUserGroups
from bot.store.audit import introduce_key
from bot.store.audit_writer import AuditWriter
from bot.store.database import Database
from bot.store.models import utcnow
from bot.watch.anchoring import AnchorSink, AuditAnchoring, SlackChannelSink
from bot.watch.digest_content import HealthItem
from bot.watch.digests import Digests, gather_health
from bot.watch.incidents import IncidentWatch
from bot.watch.insights_service import Insights
from bot.watch.scheduler import SlotJob, SlotScheduler, build_scheduler

if TYPE_CHECKING:
    from slack_sdk import WebClient

logger = logging.getLogger(__name__)
ANCHOR_JOB = "audit-anchor"


@dataclass
class OpsbotCore:
    """Everything after the ack; ``close`` stops background work and waits for running work."""

    settings: Settings
    catalog: Catalog
    database: Database
    groups: GroupDirectory
    backends: Backends
    audit_writer: AuditWriter
    engine: RunEngine
    board: RequestBoard
    front_door: FrontDoor
    home: AppHome
    digests: Digests
    incidents: IncidentWatch
    pool: PostAckPool
    maintenance: Maintenance
    anchoring: AuditAnchoring
    scheduler: SlotScheduler | None = None
    identities: IdentityMap | None = None

    def start_background(self) -> None:
        key = self.settings.audit_key_bytes()
        if key is not None:
            with self.database.transaction() as session:
                keyed_at = introduce_key(session, key, utcnow())  # AuditKeyMismatch stops the start: never write unverifiable rows
            if keyed_at is not None:
                logger.warning("the audit chain is keyed from seq %d on (OPSBOT_AUDIT_KEY was set)", keyed_at)
        self.maintenance.sweep()
        self.maintenance.start()
        if self.scheduler is not None:
            self.scheduler.start()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Until the post-ack work, the runs it started and the messages they redraw are done (the shell waits before its next prompt)."""
        return self.pool.wait_idle(timeout) and self.engine.wait_idle(timeout) and self.board.wait_idle(timeout)

    def close(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown()
        self.maintenance.stop()
        self.pool.shutdown(wait=True)
        self.engine.shutdown(wait=True)
        self.board.close()
        self.home.close()
        self.audit_writer.close()
        if self.scheduler is not None:
            # After the last append: the head as this replica leaves it. Only replicas that run the
            # schedule anchor (the shell and the demo are one person's terminal, not a replica).
            self.anchoring.publish("shutdown")
        self.database.dispose()


CoreFactory = Callable[[Settings, Notifier, ExternalGroupResolver], OpsbotCore]
"""Builds the core around the Slack notifier and group resolver (tests pass one with their own catalog)."""


def load_settings_catalog(settings: Settings) -> Catalog:
    """The catalog the settings name (``OPSBOT_CONFIG``, ``OPSBOT_RUNBOOKS_DIR``), with opsbot's built-ins."""
    return load_catalog(settings.config_path, settings.runbooks_dir, builtins=BUILTIN_SPECS)


def build_core(
    settings: Settings,
    *,
    notifier: Notifier,
    catalog: Catalog | None = None,
    external_groups: ExternalGroupResolver | None = None,
    clock: Callable[[], datetime] = utcnow,
    timing: RunnerTiming | None = None,
    maintenance_interval: float | None = None,
) -> OpsbotCore:
    """Load the catalog (unless given), connect the database, and wire the parts together.

    ``timing`` and ``maintenance_interval`` default to the settings (``OPSBOT_RUN_LEASE_SECONDS``,
    ``OPSBOT_MAINTENANCE_SECONDS``); tests pass their own.
    """
    loaded = catalog or load_settings_catalog(settings)
    database = Database(settings.database_url.get_secret_value(), audit_key=settings.audit_key_bytes())
    groups = GroupDirectory(loaded.config, external_groups)
    identities = IdentityMap(loaded.config.identity, groups_of=groups.groups_of)
    backends = Backends(loaded.config, settings)
    run_timing = timing or RunnerTiming.for_lease(settings.run_lease_seconds)
    lease_seconds = run_timing.lease.total_seconds()
    audit_writer = AuditWriter(database, clock, retry_seconds=lease_seconds)
    surface = notifier if isinstance(notifier, HomeSurface) else None  # Slack publishes homes; the shell has none
    home = AppHome(database=database, catalog=loaded, groups=groups, surface=surface, clock=clock)
    board = RequestBoard(catalog=loaded, database=database, notifier=notifier, clock=clock, retry_seconds=lease_seconds, home=home)
    gate = Gate(config=loaded.config, groups=groups, audit_writer=audit_writer, clock=clock)
    engine = RunEngine(
        database=database, catalog=loaded, backends=backends, observer=board, audit_writer=audit_writer,
        runner_id=settings.instance_id, threads=settings.runner_threads, clock=clock, timing=run_timing, identities=identities,
        admission=lambda row, approvers: gate.recheck(row, loaded.runbook(row.runbook), approvers),
    )  # fmt: skip

    def health(items: list[HealthItem]) -> list[ServiceHealth]:
        return gather_health(backends, items)

    insights = Insights(catalog=loaded, database=database, clock=clock)
    digests = Digests(catalog=loaded, database=database, notifier=notifier, clock=clock, health=health, insights=insights)
    incidents = IncidentWatch(config=loaded.config, database=database, notifier=notifier, clock=clock, health=health)
    desk = Desk(
        catalog=loaded, database=database, groups=groups, gate=gate, board=board, notifier=notifier,
        audit_writer=audit_writer, digests=digests, incidents=incidents, insights=insights, clock=clock, identities=identities,
        backends=backends,
    )  # fmt: skip
    intake = Intake(desk=desk, backends=backends, engine=engine)
    clicks = Clicks(desk=desk, intake=intake, engine=engine)
    front_door = FrontDoor(desk=desk, builtins=BUILTINS_BY_NAME, intake=intake, clicks=clicks, home=home)
    scheduler = (
        build_scheduler(loaded.config, database=database, owner=settings.instance_id, digests=digests, watch=incidents, insights=insights)
        if settings.run_scheduler
        else None
    )
    anchoring = AuditAnchoring(database=database, sinks=anchor_sinks(settings, notifier), clock=clock)
    if scheduler is not None:
        every = timedelta(seconds=settings.audit_anchor_seconds)
        scheduler.add(SlotJob(ANCHOR_JOB, interval_trigger(every), anchoring.scheduled, every))
    interval = settings.maintenance_seconds if maintenance_interval is None else maintenance_interval
    maintenance = Maintenance(
        database=database, engine=engine, expire_due=lambda now: expire_due(database, now), redraw=board.redraw, clock=clock,
        interval=interval,
    )  # fmt: skip
    return OpsbotCore(
        settings=settings, catalog=loaded, database=database, groups=groups, backends=backends, audit_writer=audit_writer,
        engine=engine, board=board, front_door=front_door, home=home, digests=digests, incidents=incidents,
        pool=PostAckPool(max_backlog=settings.max_backlog),
        maintenance=maintenance, anchoring=anchoring, scheduler=scheduler, identities=identities,
    )  # fmt: skip


def anchor_sinks(settings: Settings, notifier: Notifier) -> list[AnchorSink]:
    """The configured places anchors go besides the log line: an Object Lock bucket, a Slack channel."""
    sinks: list[AnchorSink] = []
    if settings.audit_anchor_s3:
        from bot.backends.aws.anchor_bucket import S3AnchorBucket

        bucket = S3AnchorBucket(
            settings.audit_anchor_s3, endpoint_url=settings.audit_anchor_s3_endpoint, region=settings.audit_anchor_s3_region,
            retention=timedelta(days=settings.audit_anchor_s3_retention_days), mode=settings.audit_anchor_s3_mode,
        )  # fmt: skip
        sinks.append(bucket)
    if settings.audit_anchor_channel:
        sinks.append(SlackChannelSink(notifier, settings.audit_anchor_channel))
    return sinks


def default_core(settings: Settings, notifier: Notifier, groups: ExternalGroupResolver) -> OpsbotCore:
    return build_core(settings, notifier=notifier, external_groups=groups)


class CoreJobRunner(JobRunner):
    """Slack's jobs and the inbound API's, done with one core (in an executor, or inline)."""

    def __init__(self, core: OpsbotCore, client: WebClient) -> None:
        super().__init__(core.front_door, client)
        self._api = ApiJobRunner(
            front_door=core.front_door, incidents=core.incidents, database=core.database, audit_writer=core.audit_writer, clock=utcnow
        )

    def run(self, job: Job | ApiJob) -> None:
        if isinstance(job, Job):
            super().run(job)
        else:
            self._api.run(job)


def api_body_reader(timeout: float) -> Callable[[Request, int], Awaitable[bytes]]:
    """The API reads bodies as ``POST /slack/events`` does (``bot.serve.bodies``); refusals become its problem answers."""

    async def read(request: Request, max_bytes: int) -> bytes:
        try:
            return await read_limited_body(request, max_bytes=max_bytes, timeout=timeout)
        except BodyAbandoned as gone:
            raise ApiProblem(400, "abandoned", gone.reason) from None
        except BodyRefused as refused:
            kind = {413: "too-large", 408: "too-slow"}.get(refused.status, "bad-body")
            raise ApiProblem(refused.status, kind, f"The body was refused: {refused.reason}.", headers={"Connection": "close"}) from None

    return read


@dataclass
class ServingBot:
    """What one serving process runs: the Slack front door, the inbound API, the handoff behind both, and (inline) the core."""

    slack: SlackBot
    handoff: Handoff
    database: Database
    core: OpsbotCore | None = None
    api: InboundApi | None = None

    async def start(self) -> None:
        """On the serving loop: start the core's background work (in a thread), then the handoff."""
        if self.core is not None:
            await asyncio.to_thread(self.core.start_background)
        await self.handoff.start()

    async def close(self) -> None:
        """On the serving loop: hand the last jobs over, then stop the core (waiting for running runs)."""
        await self.handoff.close()
        if self.core is not None:
            await asyncio.to_thread(self.core.close)
        else:
            await asyncio.to_thread(self.database.dispose)


def build_inline_bot(settings: Settings, *, core_factory: CoreFactory = default_core) -> ServingBot:
    """The core in this process, jobs to its post-ack pool (tests; ``build_server`` without an executor)."""
    web = make_web_client(settings)
    groups = SlackUserGroups(web, ttl_seconds=settings.group_cache_seconds, max_age_seconds=settings.group_max_age_seconds)
    core = core_factory(settings, SlackNotifier(web), groups)
    groups.share(core.database)
    if core.identities is not None:
        core.identities.use_emails(SlackEmails(web))
    handoff = LocalHandoff(core.pool, CoreJobRunner(core, web), urgent=settings.urgent_command_names())
    slack = SlackBot(
        settings=settings, web=web, parse=core.catalog.parse, commands=core.catalog.commands, handoff=handoff,
        vocabulary=core.catalog.vocabulary,
    )  # fmt: skip
    catalog = core.catalog
    api = InboundApi(
        config=catalog.config, commands=catalog.commands, vocabulary=catalog.vocabulary, database=core.database, handoff=handoff,
        read_body=api_body_reader(settings.body_timeout_seconds),
    )  # fmt: skip
    return ServingBot(slack=slack, handoff=handoff, database=core.database, core=core, api=api)


def build_ack_only_bot(settings: Settings, executor_sockets: str) -> ServingBot:
    """Ack-only: parse with the commands, hand every job to the executor processes (comma-separated sockets).

    Loads no action registry and no backend: an HTTP worker never imports ``kubernetes`` or ``boto3``.
    """
    commands = load_commands(settings.config_path, settings.runbooks_dir, builtins=BUILTIN_SPECS)
    handoff = SpreadHandoff(executor_sockets.split(","), urgent=settings.urgent_command_names())
    slack = SlackBot(
        settings=settings, web=make_web_client(settings), parse=commands.parse, commands=commands.commands, handoff=handoff,
        vocabulary=commands.vocabulary,
    )  # fmt: skip
    # With the audit key: the API audits its refusals from here, and they join the same (keyed) chain.
    database = Database(settings.database_url.get_secret_value(), audit_key=settings.audit_key_bytes())
    api = InboundApi(
        config=commands.config, commands=commands.commands, vocabulary=commands.vocabulary, database=database, handoff=handoff,
        read_body=api_body_reader(settings.body_timeout_seconds),
    )  # fmt: skip
    return ServingBot(slack=slack, handoff=handoff, database=database, api=api)
