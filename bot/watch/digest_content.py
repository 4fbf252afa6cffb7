"""What a health digest shows, as plain records, and the pure decisions about it: selection, changes, summary, quiet.

Health comes in BULK (one ``health_of`` call per backend: a digest over 2,000 Deployments costs requests
per namespace, not per service); "what changed" is read from the audit log, so it covers every replica and
survives restarts. Everything here is a pure function over plain records, tested on its own.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.audit.events import EventType
from bot.catalog.catalog import Catalog
from bot.catalog.config import OpsbotConfig, Target
from bot.messages import Message, MessageRef
from bot.service_health import HealthState, ServiceHealth, TargetRef
from bot.watch.insights import InsightsReport

logger = logging.getLogger(__name__)

HealthItem = tuple[TargetRef, Target]
HealthSource = Callable[[list[HealthItem]], list[ServiceHealth]]

DEFAULT_LOOKBACK = timedelta(hours=24)
"""How far back "changes" reach for a channel that never had a digest."""
MAX_EVENTS_READ = 2_000

STATE_ORDER: tuple[HealthState, ...] = ("healthy", "degraded", "failed", "progressing", "unknown")
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
    insights: InsightsReport | None = None
    """The weekly delivery section (``insights: true``), in the first digest of each week only."""

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


def _params_detail(params: str) -> str:
    try:
        values = json.loads(params) if params else {}
    except ValueError:
        return ""
    if not isinstance(values, dict):
        return ""
    return " ".join(f"{key}={value}" for key, value in values.items() if key not in ("service", "env") and value not in (None, ""))


def first_of_week(now: datetime, last_posted: datetime | None, zone: str) -> bool:
    """True when no digest went to this channel yet in ``now``'s ISO week (in the digest's time zone)."""
    if last_posted is None:
        return True
    tz = _zone(zone)
    return now.astimezone(tz).isocalendar()[:2] != last_posted.astimezone(tz).isocalendar()[:2]


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")
