"""The health digest: every service's health, what changed, what waits, posted to a channel on a schedule.

Why it is built this way:

* health comes in BULK, grouped per target kind (one ``health_of`` call per backend, which
  itself makes one list call per namespace or one describe per ten ECS services): a digest
  over 2,000 Deployments costs requests per namespace, not per service;
* "what changed" is read from the audit log (final events of mutating runbooks since the
  channel's last digest), so it covers every replica and survives restarts;
* assembly, the summary line, rendering and the quiet decision are pure functions over
  plain records, tested on their own; ``Digests`` is the thin shell that reads the
  backends and SQL, posts, remembers (``digest_state``) and audits (``digest_posted``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.audit.events import AuditEvent, EventType
from bot.backends import Backends
from bot.catalog import Catalog
from bot.config import AsgTarget, Digest, EcsTarget, KubernetesTarget, OpsbotConfig, Target
from bot.errors import OpsbotError
from bot.health import HealthState, ServiceHealth, TargetRef
from bot.lifecycle import Actor
from bot.messages import Message, MessageRef, code, escape
from bot.notifier import Notifier
from bot.states import RequestState
from bot.store import audit as audit_store
from bot.store import locks as lock_store
from bot.store import requests as request_store
from bot.store import slots as slot_store
from bot.store.database import Database

logger = logging.getLogger(__name__)

HealthItem = tuple[TargetRef, Target]
HealthSource = Callable[[list[HealthItem]], list[ServiceHealth]]

DEFAULT_LOOKBACK = timedelta(hours=24)
"""How far back "changes" reach for a channel that never had a digest."""
MAX_HEALTHY_LISTED = 40
"""Past this many healthy services, they are counted per environment instead of listed."""
MAX_CHANGES_LISTED = 30
MAX_EVENTS_READ = 2_000
SECTION_MAX_LINES = 20
SECTION_MAX_CHARS = 2_500
"""Sections stay well under Slack's 3,000-character section limit; long lists become several sections."""

STATE_ORDER: tuple[HealthState, ...] = ("healthy", "degraded", "failed", "progressing", "unknown")
STATE_ICONS: dict[str, str] = {"healthy": "✅", "progressing": "⏳", "degraded": "⚠️", "failed": "❌", "unknown": "❔"}
RUN_OUTCOMES: dict[str, tuple[str, str]] = {
    str(EventType.SUCCEEDED): ("✅", "succeeded"),
    str(EventType.FAILED): ("❌", "failed"),
    str(EventType.ROLLED_BACK): ("↩️", "failed, rolled back"),
    str(EventType.INTERRUPTED): ("⚠️", "interrupted"),
}
"""The audit events that end a run, and how a digest words them."""
CHANGE_ORDER = ("deploy", "rollback", "scale", "restart")


# -- records ----------------------------------------------------------------------------


class AuditRecord(Protocol):
    """The audit-log columns a digest reads (``AuditEventRow`` has them)."""

    @property
    def event(self) -> str: ...
    @property
    def request_id(self) -> int | None: ...
    @property
    def runbook(self) -> str: ...
    @property
    def service(self) -> str: ...
    @property
    def env(self) -> str: ...
    @property
    def params(self) -> str: ...
    @property
    def at(self) -> datetime: ...


@dataclass(frozen=True)
class Change:
    """A finished run of a mutating runbook: what, where, by whom, how it ended."""

    request_id: int | None
    runbook: str
    service: str
    env: str
    outcome: str
    by: str
    at: datetime
    detail: str = ""

    @property
    def succeeded(self) -> bool:
        return self.outcome == str(EventType.SUCCEEDED)


@dataclass(frozen=True)
class Pending:
    """A request waiting for approval."""

    request_id: int
    runbook: str
    service: str
    env: str
    by: str
    since: datetime


@dataclass(frozen=True)
class HeldLock:
    """A lock on a service/env: a run's or a person's."""

    service: str
    env: str
    holder: str
    kind: str
    reason: str
    until: datetime


@dataclass(frozen=True)
class DigestContent:
    """Everything a digest shows, gathered at ``generated_at``; rendering is pure from here."""

    channel: str
    timezone: str
    generated_at: datetime
    since: datetime
    health: tuple[ServiceHealth, ...]
    changes: tuple[Change, ...] = ()
    pending: tuple[Pending, ...] = ()
    locks: tuple[HeldLock, ...] = ()

    @property
    def all_healthy(self) -> bool:
        return all(item.is_healthy for item in self.health)


@dataclass(frozen=True)
class DigestResult:
    """What ``Digests.post`` did: ``posted``, ``quiet`` (skipped) or ``not posted`` (the notifier failed)."""

    outcome: str
    content: DigestContent
    message: Message | None = None
    ref: MessageRef | None = None


# -- pure: selection, changes, summary, rendering, quiet -------------------------------


def select_targets(config: OpsbotConfig, services: Sequence[str], envs: Sequence[str]) -> list[HealthItem]:
    """The (service, env) targets a digest covers, in catalog order; ``*`` matches all."""
    items: list[HealthItem] = []
    for name, service in config.services.items():
        if "*" not in services and name not in services:
            continue
        for env, environment in service.environments.items():
            if "*" in envs or env in envs:
                items.append((TargetRef(service=name, env=env), environment.target))
    return items


def changes_from_events(events: Iterable[AuditRecord], requesters: Mapping[int, str], mutating: set[str]) -> list[Change]:
    """Finished runs of mutating runbooks among ``events``, oldest first.

    A run's final event is written by opsbot itself, so the person is looked up by request
    id in ``requesters``; read-only runbooks (``status``) are not changes.
    """
    changes: list[Change] = []
    for event in events:
        if event.event not in RUN_OUTCOMES or event.runbook not in mutating:
            continue
        by = requesters.get(event.request_id, "someone") if event.request_id is not None else "someone"
        changes.append(
            Change(
                request_id=event.request_id,
                runbook=event.runbook,
                service=event.service,
                env=event.env,
                outcome=event.event,
                by=by,
                at=event.at,
                detail=_params_detail(event.params),
            )
        )
    return changes


def summary_line(content: DigestContent) -> str:
    """``12 services healthy, 1 degraded · 3 deploys, 1 rollback`` — no names, no links, no mentions."""
    counts = Counter(item.state for item in content.health)
    if not content.health:
        health = "no services"
    else:
        healthy = counts.get("healthy", 0)
        parts = [f"{healthy:,} service{'s' if healthy != 1 else ''} healthy"]
        parts.extend(f"{counts[state]:,} {state}" for state in STATE_ORDER[1:] if counts.get(state))
        health = ", ".join(parts)
    pieces = [health, _changes_summary(content.changes)]
    if content.pending:
        pieces.append(f"{len(content.pending)} waiting for approval")
    if content.locks:
        pieces.append(f"{len(content.locks)} lock{'s' if len(content.locks) != 1 else ''}")
    return " · ".join(pieces)


def render_digest(content: DigestContent) -> Message:
    """The digest as a neutral message: summary first, then small sections a person can scan."""
    zone = _zone(content.timezone)
    summary = summary_line(content)
    local_now = content.generated_at.astimezone(zone)
    sections: list[str] = [f"*{summary}*"]
    attention = [_health_line(item) for item in content.health if not item.is_healthy]
    sections.extend(_chunk("*Needs attention*", attention))
    sections.extend(_chunk("*Healthy*", _healthy_lines([item for item in content.health if item.is_healthy])))
    since = content.since.astimezone(zone).strftime("%a %d %b %H:%M")
    change_lines = [_change_line(change, zone) for change in content.changes[-MAX_CHANGES_LISTED:]]
    if len(content.changes) > MAX_CHANGES_LISTED:
        change_lines.insert(0, f"…{len(content.changes) - MAX_CHANGES_LISTED} earlier changes not shown (see `/ops history`)")
    sections.extend(_chunk(f"*Changes since {since}*", change_lines or ["No deploys, rollbacks, scales or restarts."]))
    sections.extend(_chunk("*Waiting for approval*", [_pending_line(item, content.generated_at) for item in content.pending]))
    sections.extend(_chunk("*Locks*", [_lock_line(item, zone) for item in content.locks]))
    return Message(
        text=summary,
        title=f"Health digest · {local_now.strftime('%a %d %b %H:%M')} {local_now.tzname() or content.timezone}",
        sections=tuple(sections),
        context=(f"opsbot · {len(content.health)} service environments · times in {escape(content.timezone)}",),
    )


def fingerprint(content: DigestContent) -> str:
    """A hash of what a quiet digest compares: each target's state and version, approvals waiting, locks.

    Changes are not part of it: they are "since the last digest", so they are new by definition.
    """
    shown = {
        "health": sorted([item.service, item.env, item.state, item.version or "", item.desired or 0] for item in content.health),
        "pending": sorted(item.request_id for item in content.pending),
        "locks": sorted([item.service, item.env, item.holder, item.kind] for item in content.locks),
    }
    return hashlib.sha256(json.dumps(shown, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


def should_post(content: DigestContent, *, quiet: bool, last_fingerprint: str | None) -> bool:
    """A quiet digest is skipped only when all is healthy, nothing changed, and it would repeat the last one."""
    if not quiet:
        return True
    if not content.all_healthy or content.changes:
        return True
    return fingerprint(content) != last_fingerprint


def mutating_runbooks(catalog: Catalog) -> set[str]:
    """Runbooks with at least one mutating step: their runs are "changes" in a digest."""
    mutating: set[str] = set()
    for name, runbook in catalog.runbooks.items():
        for step in runbook.steps:
            action = catalog.registry.get(step.action)
            if action is None or action.mutating:
                mutating.add(name)
                break
    return mutating


# -- the shell: backends, SQL, notifier --------------------------------------------------


def gather_health(backends: Backends, items: list[HealthItem]) -> list[ServiceHealth]:
    """Health of every item in order, with one bulk call per backend (never one call per service).

    A backend that cannot be reached at all (no kubeconfig, no AWS credentials) marks its
    items ``unknown`` with the reason, so the rest of the digest still goes out.
    """
    results: dict[int, ServiceHealth] = {}
    kube = [(index, ref, target) for index, (ref, target) in enumerate(items) if isinstance(target, KubernetesTarget)]
    aws = [(index, ref, target) for index, (ref, target) in enumerate(items) if isinstance(target, EcsTarget | AsgTarget)]
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
    ) -> None:
        self._catalog = catalog
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

    def post(self, digest: Digest, *, slot: str | None = None, actor: Actor | None = None, force: bool = False) -> DigestResult:
        """Post the digest unless it is ``quiet`` and has nothing to say (``force``: a person asked)."""
        now = self._clock()
        content, last_fingerprint = self._snapshot(digest, now)
        if not force and not should_post(content, quiet=digest.quiet, last_fingerprint=last_fingerprint):
            logger.info("digest for %s skipped: quiet, all healthy, nothing changed", digest.channel)
            return DigestResult("quiet", content)
        message = render_digest(content)
        ref = self._notifier.post(digest.channel, message)
        if ref is None:
            return DigestResult("not posted", content, message)
        who = actor or Actor(user_id="", name="opsbot")
        event = AuditEvent(
            event=EventType.DIGEST_POSTED, actor_id=who.user_id, actor_name=who.name, channel=digest.channel,
            outcome="posted", details={"summary": message.text, "slot": slot or "on demand", "services": len(content.health),
            "changes": len(content.changes), "message": ref.as_dict()},
        )  # fmt: skip
        with self._database.transaction() as session:
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
            locks=tuple(locks),
        )  # fmt: skip
        return content, state.last_fingerprint if state is not None else None


# -- helpers ------------------------------------------------------------------------------


def _changes_summary(changes: Sequence[Change]) -> str:
    if not changes:
        return "no changes"
    by_runbook = Counter(change.runbook for change in changes)
    failed = Counter(change.runbook for change in changes if not change.succeeded)
    names = [name for name in CHANGE_ORDER if name in by_runbook] + sorted(set(by_runbook) - set(CHANGE_ORDER))
    parts = []
    for name in names:
        text = f"{by_runbook[name]} {_plural(name, by_runbook[name])}"
        if failed.get(name):
            text += f" ({failed[name]} failed)"
        parts.append(text)
    return ", ".join(parts)


def _plural(word: str, count: int) -> str:
    if count == 1:
        return word
    return word + ("es" if word.endswith(("s", "x", "ch", "sh")) else "s")


def _health_line(item: ServiceHealth) -> str:
    parts = [f"{STATE_ICONS.get(item.state, '❔')} *{escape(item.service)}*/{escape(item.env)} — {item.state}", item.counts()]
    if item.version:
        parts.append(code(item.version))
    line = " · ".join(parts)
    if item.reasons:
        line += f" — {escape(item.reasons[0])}"
        if len(item.reasons) > 1:
            line += f" (+{len(item.reasons) - 1} more)"
    return line


def _healthy_lines(healthy: list[ServiceHealth]) -> list[str]:
    if len(healthy) <= MAX_HEALTHY_LISTED:
        return [_health_line(item) for item in healthy]
    per_env = Counter(item.env for item in healthy)
    listed = ", ".join(f"{escape(env)}: {count:,}" for env, count in sorted(per_env.items()))
    return [f"✅ {len(healthy):,} healthy service environments ({listed}) — too many to list"]


def _change_line(change: Change, zone: tzinfo) -> str:
    icon, words = RUN_OUTCOMES[change.outcome]
    number = f"#{change.request_id} " if change.request_id is not None else ""
    detail = f" {escape(change.detail)}" if change.detail else ""
    when = change.at.astimezone(zone).strftime("%a %H:%M")
    target = f"*{escape(change.service)}*/{escape(change.env)}"
    return f"{icon} {number}{escape(change.runbook)} {target}{detail} by {escape(change.by)} — {words} ({when})"


def _pending_line(item: Pending, now: datetime) -> str:
    minutes = max(0, int((now - item.since).total_seconds() // 60))
    target = f"*{escape(item.service)}*/{escape(item.env)}"
    return f"🕒 #{item.request_id} {escape(item.runbook)} {target} by {escape(item.by)}, waiting {minutes} min"


def _lock_line(item: HeldLock, zone: tzinfo) -> str:
    reason = f": {escape(item.reason)}" if item.reason else ""
    kind = "a run of" if item.kind == "run" else "held by"
    until = item.until.astimezone(zone).strftime("%H:%M")
    return f"🔒 *{escape(item.service)}*/{escape(item.env)} — {kind} {escape(item.holder)} until {until}{reason}"


def _chunk(heading: str, lines: list[str]) -> list[str]:
    """``heading`` + lines split into sections of at most 20 lines / 2,500 characters."""
    sections: list[str] = []
    current: list[str] = []
    size = len(heading)
    for full_line in lines:
        line = full_line[: SECTION_MAX_CHARS - len(heading) - 20]
        if current and (len(current) >= SECTION_MAX_LINES or size + len(line) + 1 > SECTION_MAX_CHARS):
            sections.append("\n".join([heading if not sections else f"{heading} (continued)", *current]))
            current, size = [], len(heading)
        current.append(line)
        size += len(line) + 1
    if current:
        sections.append("\n".join([heading if not sections else f"{heading} (continued)", *current]))
    return sections


def _params_detail(params: str) -> str:
    try:
        values = json.loads(params) if params else {}
    except ValueError:
        return ""
    if not isinstance(values, dict):
        return ""
    return " ".join(f"{key}={value}" for key, value in values.items() if key not in ("service", "env") and value not in (None, ""))


def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _unknown(ref: TargetRef, target: Target, reason: str) -> ServiceHealth:
    return ServiceHealth(service=ref.service, env=ref.env, target=target.describe(), state="unknown", reasons=(reason,))
