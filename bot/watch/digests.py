"""The digest service: gather health from the backends and the rest from SQL, post, remember, audit.

Used by the scheduler, ``/ops digest`` and ``opsbot digest --print``. ``Digests`` is the thin shell around
the pure records and rendering (``digest_content``, ``digest_render``): it reads the backends and SQL,
posts, remembers (``digest_state``) and audits (``digest_posted``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from bot.audit.events import SYSTEM, Actor, EventType
from bot.audit.factories import actor_event
from bot.backends import Backends
from bot.catalog.catalog import Catalog
from bot.catalog.config import AsgTarget, Digest, EcsTarget, GitopsTarget, KubernetesTarget, Target
from bot.errors import OpsbotError
from bot.messages import Notifier
from bot.service_health import ServiceHealth, TargetRef
from bot.store import audit as audit_store
from bot.store import locks as lock_store
from bot.store import requests as request_store
from bot.store import slots as slot_store
from bot.store.database import Database
from bot.store.states import RequestState
from bot.watch.digest_content import (
    DEFAULT_LOOKBACK,
    MAX_EVENTS_READ,
    RUN_OUTCOMES,
    DigestContent,
    DigestResult,
    HealthItem,
    HealthSource,
    HeldLock,
    Pending,
    changes_from_events,
    fingerprint,
    first_of_week,
    mutating_runbooks,
    select_targets,
    should_post,
)
from bot.watch.digest_render import render_digest
from bot.watch.insights import InsightsReport
from bot.watch.insights_service import Insights

logger = logging.getLogger(__name__)

# -- the shell: backends, SQL, notifier --------------------------------------------------


def gather_health(backends: Backends, items: list[HealthItem]) -> list[ServiceHealth]:
    """Health of every item in order, with one bulk call per backend (never one call per service).

    A backend that cannot be reached at all (no kubeconfig, no AWS credentials) marks its
    items ``unknown`` with the reason, so the rest of the digest still goes out.
    """
    results: dict[int, ServiceHealth] = {}
    kube = [(index, ref, target) for index, (ref, target) in enumerate(items) if isinstance(target, KubernetesTarget)]
    aws = [(index, ref, target) for index, (ref, target) in enumerate(items) if isinstance(target, EcsTarget | AsgTarget)]
    gitops = [(index, ref, target) for index, (ref, target) in enumerate(items) if isinstance(target, GitopsTarget)]
    if gitops:
        gitops_targets = [(ref, target) for _, ref, target in gitops if isinstance(target, GitopsTarget)]
        try:
            found = backends.gitops.health_of(gitops_targets)
        except OpsbotError as error:
            found = [_unknown(ref, target, error.user_message) for ref, target in gitops_targets]
        results.update((index, health) for (index, _, _), health in zip(gitops, found, strict=True))
    if kube:
        try:
            found = backends.kubernetes.health_of([(ref, target) for _, ref, target in kube])
        except OpsbotError as error:
            found = [_unknown(ref, target, error.user_message) for _, ref, target in kube]
        results.update((index, health) for (index, _, _), health in zip(kube, found, strict=True))
    if aws:
        aws_targets: list[tuple[TargetRef, EcsTarget | AsgTarget]] = []
        for _, ref, target in aws:
            assert isinstance(target, EcsTarget | AsgTarget)
            aws_targets.append((ref, target))
        try:
            found = backends.aws.health_of(aws_targets)
        except OpsbotError as error:
            found = [_unknown(ref, target, error.user_message) for ref, target in aws_targets]
        results.update((index, health) for (index, _, _), health in zip(aws, found, strict=True))
    return [results[index] for index in range(len(items))]


class Digests:
    """Builds and posts digests; used by the scheduler, ``/ops digest`` and ``opsbot digest --print``."""

    def __init__(
        self,
        *,
        catalog: Catalog,
        database: Database,
        notifier: Notifier,
        clock: Callable[[], datetime],
        health: HealthSource,
        insights: Insights | None = None,
    ) -> None:
        self._catalog = catalog
        self._insights = insights
        self._database = database
        self._notifier = notifier
        self._clock = clock
        self._health = health
        self._mutating = mutating_runbooks(catalog)

    @property
    def configured(self) -> list[Digest]:
        return list(self._catalog.config.channels.digests)

    def for_channel(self, channel: str) -> Digest:
        """The configured digest for ``channel``, else one covering every service and env."""
        for digest in self._catalog.config.channels.digests:
            if digest.channel == channel:
                return digest
        return Digest(channel=channel)

    def build(self, digest: Digest) -> DigestContent:
        """Gather the digest's content now, without posting or remembering anything."""
        return self._snapshot(digest, self._clock())[0]

    def post(
        self, digest: Digest, *, slot: str | None = None, actor: Actor | None = None, force: bool = False, remember: bool = True
    ) -> DigestResult:
        """Post the digest unless it is ``quiet`` and has nothing to say (``force``: a person asked).

        ``remember=False`` (``/ops digest``): an ad-hoc digest never moves the channel's "since" window
        or fingerprint, so the scheduled digest still covers everything since *its* last post.
        """
        now = self._clock()
        content, last_fingerprint = self._snapshot(digest, now)
        if not force and not should_post(content, quiet=digest.quiet, last_fingerprint=last_fingerprint):
            logger.info("digest for %s skipped: quiet, all healthy, nothing changed", digest.channel)
            return DigestResult("quiet", content)
        message = render_digest(content)
        ref = self._notifier.post(digest.channel, message)
        if ref is None:
            return DigestResult("not posted", content, message)
        who = actor or SYSTEM
        event = actor_event(
            EventType.DIGEST_POSTED, who, channel=digest.channel, outcome="posted", summary=message.text,
            slot=slot or "on demand", services=len(content.health), changes=len(content.changes), message=ref.as_dict(),
        )  # fmt: skip
        with self._database.transaction() as session:
            if remember:
                slot_store.record_digest(session, channel=digest.channel, posted_at=now, fingerprint=fingerprint(content))
            audit_store.append_events(session, [event], now)
        return DigestResult("posted", content, message, ref)

    def _snapshot(self, digest: Digest, now: datetime) -> tuple[DigestContent, str | None]:
        items = select_targets(self._catalog.config, digest.services, digest.envs)
        services = {ref.service for ref, _ in items}
        envs = {ref.env for ref, _ in items}
        health = self._health(items)
        with self._database.reading() as session:
            state = slot_store.digest_state(session, digest.channel)
            since = state.last_posted_at if state is not None and state.last_posted_at is not None else now - DEFAULT_LOOKBACK
            events = [
                event
                for event in audit_store.events_since(session, since, None if "*" in digest.services else sorted(services))[
                    -MAX_EVENTS_READ:
                ]
                if event.env in envs and event.event in RUN_OUTCOMES
            ]
            requesters: dict[int, str] = {}
            for request_id in {event.request_id for event in events if event.request_id is not None}:
                row = request_store.get_request(session, request_id)
                if row is not None:
                    requesters[request_id] = row.requester_name
            pending = [
                Pending(row.id, row.runbook, row.service, row.env, row.requester_name, row.created_at)
                for row in request_store.list_requests(session, states=[RequestState.PENDING_APPROVAL], limit=50)
                if row.service in services and row.env in envs
            ]
            locks = [
                HeldLock(lock.service, lock.env, lock.holder_name, lock.kind, lock.reason, lock.expires_at)
                for lock in lock_store.all_locks(session, now)
                if lock.service in services and lock.env in envs
            ]
        content = DigestContent(
            channel=digest.channel, timezone=digest.timezone, generated_at=now, since=since, health=tuple(health),
            changes=tuple(changes_from_events(events, requesters, self._mutating)), pending=tuple(reversed(pending)),
            locks=tuple(locks), insights=self._weekly_insights(digest, now, state.last_posted_at if state is not None else None),
        )  # fmt: skip
        return content, state.last_fingerprint if state is not None else None

    def _weekly_insights(self, digest: Digest, now: datetime, last_posted: datetime | None) -> InsightsReport | None:
        """The last 7 days against the 7 before, for ``insights: true`` digests, in the week's first digest."""
        if not digest.insights or self._insights is None or not first_of_week(now, last_posted, digest.timezone):
            return None
        service = digest.services[0] if len(digest.services) == 1 and digest.services[0] != "*" else None
        env = digest.envs[0] if len(digest.envs) == 1 and digest.envs[0] != "*" else None
        try:
            return self._insights.report(service=service, env=env, days=7, zone=digest.timezone)
        except OpsbotError:
            logger.warning("digest for %s: no insights section", digest.channel, exc_info=True)
            return None


# -- helpers ------------------------------------------------------------------------------


def _unknown(ref: TargetRef, target: Target, reason: str) -> ServiceHealth:
    return ServiceHealth(service=ref.service, env=ref.env, target=target.describe(), state="unknown", reasons=(reason,))
