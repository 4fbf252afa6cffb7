"""The health watch: a degraded service opens ONE incident, posted once, resolved in its thread on recovery.

Why a state machine in SQL and not a flag in memory: the watch runs on whichever replica
claims the slot, so "was this already posted?" must be answered by the database. A live
incident is one row per service/env (``open_key`` unique):

    (none) ──degraded──► watching ──still degraded after degraded_after──► open ──click──► acknowledged
                 │            └──recovered first──► (row deleted, nothing was posted)     │
                 └──failed rollout / crash loop──► open ◄─────────────────────────────────┘
    open | acknowledged ──healthy again──► resolved (open_key cleared: the next degradation is a new incident)

What counts as degraded, and how fast, is ``degradation`` + ``decide`` (pure, tested on
their own). A rollout past its progress deadline (``failed``) or crash-looping pods open an
incident at once — waiting will not fix them; fewer replicas than desired (Kubernetes
available < desired, ECS running < desired, ASG instances short) only after
``health.degraded_after``, so a node drain or a slow pod start is not an incident. An
in-progress rollout is left to its own deadline; ``unknown`` (cluster unreachable) changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from bot.audit.events import SYSTEM, Actor, AuditEvent, EventType
from bot.audit.factories import actor_event
from bot.catalog.config import OpsbotConfig
from bot.errors import AlreadyDecided, RequestNotFound
from bot.messages import Button, ButtonAction, Message, MessageRef, Notifier, escape, mention
from bot.service_health import ServiceHealth
from bot.store import alerts as alert_store
from bot.store import audit as audit_store
from bot.store import incidents as incident_store
from bot.store.database import Database
from bot.store.models import IncidentRow
from bot.timefmt import date_time
from bot.watch.digest_content import HealthSource, select_targets

logger = logging.getLogger(__name__)

CRASH_LOOP_REASON = "CrashLoopBackOff"
MAX_REASONS = 10


class IncidentState(StrEnum):
    """The states of an incident row, named once."""

    WATCHING = "watching"
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


LIVE_STATES = (IncidentState.OPEN, IncidentState.ACKNOWLEDGED)
HEALTH_SOURCE = "health"
ALERT_SOURCE = "alertmanager"
"""An incident an alert opened or joined is resolved by the alert, not by the health watch (it sees what the cluster
says, the alert what users feel: a healthy Deployment can still serve errors)."""


class Step(StrEnum):
    """What one check does for one service/env."""

    NOTHING = "nothing"
    WATCH = "watch"
    OPEN = "open"
    RESOLVE = "resolve"
    FORGET = "forget"


@dataclass(frozen=True)
class Degradation:
    """Why a service is degraded, and whether that is an incident at once or only if it lasts."""

    reasons: tuple[str, ...]
    immediate: bool


@dataclass
class WatchReport:
    """What one check did, for logs and the scheduler's slot outcome."""

    checked: int = 0
    opened: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    watching: list[str] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        return f"checked {self.checked}, opened {len(self.opened)}, resolved {len(self.resolved)}"


# -- pure decisions -------------------------------------------------------------------


def degradation(health: ServiceHealth, *, restart_threshold: int) -> Degradation | None:
    """Is this snapshot degraded? ``None`` for healthy, in-progress and unknown services.

    Crash-looping means a container waiting in ``CrashLoopBackOff`` or, on a service that is
    not healthy, at least ``restart_threshold`` restarts among its current pods (ECS: failed
    tasks of the primary deployment). Restarts alone on a healthy service are history, not
    an incident.
    """
    if health.state in ("healthy", "unknown"):
        return None
    reasons = tuple(health.reasons[:MAX_REASONS])
    crash_looping = any(CRASH_LOOP_REASON in reason for reason in health.reasons)
    if health.restarts >= restart_threshold:
        crash_looping = True
        reasons += (f"{health.restarts} restarts (threshold {restart_threshold})",)
    if health.state == "failed":
        return Degradation(reasons or ("the last rollout failed",), immediate=True)
    if crash_looping:
        return Degradation(reasons, immediate=True)
    if health.state == "degraded":
        return Degradation(reasons or (f"{health.counts()}, fewer than desired",), immediate=False)
    return None


def decide(
    health: ServiceHealth,
    found: Degradation | None,
    state: IncidentState | None,
    first_seen_at: datetime | None,
    *,
    now: datetime,
    degraded_after: timedelta,
) -> Step:
    """The next step for one service/env given its snapshot and its live incident row (if any)."""
    if health.state == "unknown":
        return Step.NOTHING
    if found is not None:
        if state is None:
            return Step.OPEN if found.immediate or degraded_after <= timedelta(0) else Step.WATCH
        if state == IncidentState.WATCHING:
            lasted = first_seen_at is not None and now - first_seen_at >= degraded_after
            return Step.OPEN if found.immediate or lasted else Step.NOTHING
        return Step.NOTHING  # already open or acknowledged: one incident, not one per check
    if state == IncidentState.WATCHING:
        return Step.FORGET
    if state in LIVE_STATES and health.is_healthy:
        return Step.RESOLVE
    return Step.NOTHING


def incident_message(row: IncidentRow) -> Message:
    """The incident's message, drawn from its row (so an acknowledgement or recovery can redraw it)."""
    target = f"{escape(row.service)}/{escape(row.env)}"
    state = IncidentState(row.state)
    reasons = [escape(reason) for reason in (row.reasons or [])[:MAX_REASONS]] or ["fewer replicas than desired"]
    since = date_time(row.opened_at or row.first_seen_at)
    fields = (("Service", escape(row.service)), ("Environment", escape(row.env)), ("Since", since))
    why = "*Why:*\n" + "\n".join(f"• {reason}" for reason in reasons)
    if state == IncidentState.RESOLVED:
        title = f"✅ {target} recovered"
        return Message(text=f"{title} (incident #{row.id})", title=title, sections=(why,), fields=fields, context=(_resolved_note(row),))
    title = f"🔥 {target} is degraded"
    buttons: tuple[Button, ...] = (Button(ButtonAction.INCIDENT_ROLLBACK, "Roll back", str(row.id), "danger"),)
    opener = "Alertmanager" if row.source == ALERT_SOURCE else "the opsbot health watch"
    context = [f"Incident #{row.id} · opened by {opener}"]
    if state == IncidentState.OPEN:
        buttons += (Button(ButtonAction.INCIDENT_ACK, "Acknowledge", str(row.id)),)
    elif state == IncidentState.ACKNOWLEDGED:
        context.append(f"Acknowledged by {mention(row.acknowledged_by or '')}")
    return Message(text=f"{title}: {reasons[0]}", title=title, sections=(why,), fields=fields, buttons=buttons, context=tuple(context))


def recovery_message(row: IncidentRow, health: ServiceHealth) -> Message:
    """The follow-up posted in the incident's thread."""
    return Message.plain(f"✅ {escape(row.service)}/{escape(row.env)} has recovered ({health.counts()}). {_resolved_note(row)}")


# -- the watch --------------------------------------------------------------------------


class IncidentWatch:
    """Checks every service's health in bulk and moves incidents; run by the scheduler once per slot."""

    def __init__(
        self,
        *,
        config: OpsbotConfig,
        database: Database,
        notifier: Notifier,
        clock: Callable[[], datetime],
        health: HealthSource,
    ) -> None:
        self._config = config
        self._database = database
        self._notifier = notifier
        self._clock = clock
        self._health = health

    def check(self) -> WatchReport:
        """One pass over the whole catalog: one bulk health query, then one step per service/env."""
        items = select_targets(self._config, ["*"], ["*"])
        snapshots = self._health(items)
        now = self._clock()
        with self._database.reading() as session:
            rows = {(row.service, row.env): row for row in incident_store.live(session)}
        report = WatchReport(checked=len(snapshots))
        settings = self._config.health
        for health in snapshots:
            row = rows.get((health.service, health.env))
            found = degradation(health, restart_threshold=settings.restart_threshold)
            state = IncidentState(row.state) if row is not None else None
            step = decide(health, found, state, row.first_seen_at if row else None, now=now, degraded_after=settings.degraded_after)
            target = f"{health.service}/{health.env}"
            if step == Step.OPEN and found is not None:
                if self._open(health, found, row, now):
                    report.opened.append(target)
            elif step == Step.WATCH and found is not None:
                with self._database.transaction() as session:
                    incident_store.insert(
                        session, service=health.service, env=health.env, state=IncidentState.WATCHING,
                        reasons=list(found.reasons), now=now, opened=False,
                    )  # fmt: skip
                report.watching.append(target)
            elif step == Step.FORGET and row is not None:
                with self._database.transaction() as session:
                    incident_store.forget(session, row.id, state=IncidentState.WATCHING)
            elif step == Step.RESOLVE and row is not None and row.source == HEALTH_SOURCE:
                if self._resolve(row, health, now):
                    report.resolved.append(target)
            elif row is not None and state in LIVE_STATES and row.message_ref is None:
                self._post(row)  # an earlier post failed (Slack down): the incident still deserves its message
        if report.opened or report.resolved:
            logger.info("health watch: %s (opened %s, resolved %s)", report.outcome, report.opened, report.resolved)
        return report

    def alert_firing(
        self, *, fingerprint: str, service: str, env: str, reason: str, starts_at: datetime, actor: Actor
    ) -> IncidentRow | None:
        """An alert fired for service/env: open its incident (with Roll back and Acknowledge), or add its reason to the live one.

        Which copy of a notification acts is decided in the same transaction (``bot.store.alerts``,
        by fingerprint): a repeat, a retry or the other HA instance's copy changes nothing (None).
        """
        now = self._clock()
        with self._database.transaction() as session:
            if not alert_store.record_firing(
                session, fingerprint=fingerprint, service=service, env=env, starts_at=starts_at, summary=reason, now=now
            ):
                return None
            created = incident_store.insert(
                session, service=service, env=env, state=IncidentState.OPEN, reasons=[reason], now=now, opened=True, source=ALERT_SOURCE
            )  # fmt: skip
            row = created or incident_store.live_for(session, service=service, env=env)
            if row is None:
                return None  # resolved between the insert and the read (a race of a moment): the alert's next change counts
            if created is None:
                reasons = list(dict.fromkeys([*(row.reasons or []), reason]))[-MAX_REASONS:]
                incident_store.set_fields(session, row.id, reasons=reasons, source=ALERT_SOURCE)
                if row.state == IncidentState.WATCHING:
                    incident_store.transition(session, row.id, expected=[IncidentState.WATCHING], new=IncidentState.OPEN, opened_at=now)
            fresh = incident_store.get_incident(session, row.id)
            assert fresh is not None
            opened_now = created is not None or row.state == IncidentState.WATCHING
            kind, outcome = (EventType.INCIDENT_OPENED, "open") if opened_now else (EventType.INCIDENT_UPDATED, "updated")
            event = _event(kind, fresh, actor, outcome, self._message_channel(fresh), reasons=[reason], fingerprint=fingerprint)
            audit_store.append_events(session, [event], now)
        # After the commit, as in _open: a crash before the post leaves a live incident without a message, which check() posts.
        if fresh.message_ref is None:
            self._post(fresh)
        else:
            self._redraw(fresh)
        return fresh

    def alert_resolved(self, *, fingerprint: str, service: str, env: str, summary: str, actor: Actor) -> bool:
        """An alert resolved; when it was the target's last one firing, the incident it opened recovers (said in its thread).

        False for a copy that changes nothing (already resolved, unknown), or while another alert still fires there.
        """
        now = self._clock()
        with self._database.transaction() as session:
            if alert_store.record_resolved(session, fingerprint=fingerprint, now=now) is None:
                return False
            if alert_store.firing_count(session, service=service, env=env) > 0:
                return False
            row = incident_store.live_for(session, service=service, env=env)
            if row is None or row.source != ALERT_SOURCE or row.state not in LIVE_STATES:
                return False
            if not incident_store.transition(
                session, row.id, expected=list(LIVE_STATES), new=IncidentState.RESOLVED, open_key=None, resolved_at=now
            ):
                return False
            fresh = incident_store.get_incident(session, row.id)
            assert fresh is not None
            event = _event(
                EventType.INCIDENT_RESOLVED, fresh, actor, "resolved", self._message_channel(fresh), minutes=_minutes(fresh),
                fingerprint=fingerprint,
            )  # fmt: skip
            audit_store.append_events(session, [event], now)
        ref = MessageRef.from_dict(fresh.message_ref)
        if ref is not None:
            text = f"✅ {escape(service)}/{escape(env)} has recovered: Alertmanager resolved {escape(summary)}. {_resolved_note(fresh)}"
            self._notifier.post(ref.channel, Message.plain(text), thread=ref)
            self._notifier.update(ref, incident_message(fresh))
        return True

    def incident(self, incident_id: int) -> IncidentRow | None:
        with self._database.reading() as session:
            return incident_store.get_incident(session, incident_id)

    def acknowledge(self, incident_id: int, actor: Actor) -> IncidentRow:
        """open → acknowledged by ``actor``, audited, message redrawn; a second click is refused politely."""
        now = self._clock()
        with self._database.transaction() as session:
            row = incident_store.get_incident(session, incident_id)
            if row is None:
                raise RequestNotFound(f"There is no incident #{incident_id}.")
            if not incident_store.transition(
                session, incident_id, expected=[IncidentState.OPEN], new=IncidentState.ACKNOWLEDGED, acknowledged_by=actor.user_id
            ):
                raise AlreadyDecided(_not_open_text(row, self._config))
            event = _event(EventType.INCIDENT_ACKNOWLEDGED, row, actor, "acknowledged", self._message_channel(row))
            audit_store.append_events(session, [event], now)
            fresh = incident_store.get_incident(session, incident_id)
        assert fresh is not None
        self._redraw(fresh)
        return fresh

    def live_incident(self, incident_id: int) -> IncidentRow:
        """The incident if it is still open or acknowledged; otherwise a refusal a person can read."""
        row = self.incident(incident_id)
        if row is None:
            raise RequestNotFound(f"There is no incident #{incident_id}.")
        if row.state not in LIVE_STATES:
            raise AlreadyDecided(_not_open_text(row, self._config))
        return row

    # -- transitions --------------------------------------------------------------------

    def _open(self, health: ServiceHealth, found: Degradation, row: IncidentRow | None, now: datetime) -> bool:
        reasons = list(found.reasons)
        with self._database.transaction() as session:
            if row is None:
                created = incident_store.insert(
                    session, service=health.service, env=health.env, state=IncidentState.OPEN, reasons=reasons, now=now, opened=True
                )
                if created is None:
                    return False
                incident_id = created.id
            else:
                if not incident_store.transition(
                    session, row.id, expected=[IncidentState.WATCHING], new=IncidentState.OPEN, opened_at=now, reasons=reasons
                ):
                    return False
                incident_id = row.id
            fresh = incident_store.get_incident(session, incident_id)
            assert fresh is not None
            event = _event(EventType.INCIDENT_OPENED, fresh, SYSTEM, "open", self._message_channel(fresh), reasons=reasons)
            audit_store.append_events(session, [event], now)
        # Posted after the commit: a crash in between leaves an open incident without a message,
        # which the next check posts (see check); posting first could post twice.
        self._post(fresh)
        return True

    def _resolve(self, row: IncidentRow, health: ServiceHealth, now: datetime) -> bool:
        with self._database.transaction() as session:
            if not incident_store.transition(
                session, row.id, expected=list(LIVE_STATES), new=IncidentState.RESOLVED, open_key=None, resolved_at=now
            ):
                return False
            fresh = incident_store.get_incident(session, row.id)
            assert fresh is not None
            minutes = _minutes(fresh)
            event = _event(EventType.INCIDENT_RESOLVED, fresh, SYSTEM, "resolved", self._message_channel(fresh), minutes=minutes)
            audit_store.append_events(session, [event], now)
        ref = MessageRef.from_dict(fresh.message_ref)
        if ref is not None:
            self._notifier.post(ref.channel, recovery_message(fresh, health), thread=ref)
            self._notifier.update(ref, incident_message(fresh))
        return True

    def _post(self, row: IncidentRow) -> None:
        channel = self._channel_for(row.service)
        if channel is None:
            logger.warning("incident #%s for %s/%s has no channel: set channels.incident", row.id, row.service, row.env)
            return
        ref = self._notifier.post(channel, incident_message(row))
        if ref is not None:
            with self._database.transaction() as session:
                incident_store.set_fields(session, row.id, message_ref=ref.as_dict())

    def _redraw(self, row: IncidentRow) -> None:
        ref = MessageRef.from_dict(row.message_ref)
        if ref is not None:
            self._notifier.update(ref, incident_message(row))

    def _message_channel(self, row: IncidentRow) -> str:
        ref = MessageRef.from_dict(row.message_ref)
        return ref.channel if ref is not None else (self._channel_for(row.service) or "")

    def _channel_for(self, service: str) -> str | None:
        entry = self._config.services.get(service)
        return (entry.incident_channel if entry else None) or self._config.channels.incident


def _event(event: EventType, row: IncidentRow, actor: Actor, outcome: str, channel: str, **details: Any) -> AuditEvent:
    return actor_event(event, actor, channel=channel, service=row.service, env=row.env, outcome=outcome, incident=row.id, **details)


def _not_open_text(row: IncidentRow, config: OpsbotConfig) -> str:
    """Plain text (errors are escaped when shown), so names rather than mentions."""
    target = f"{row.service}/{row.env}"
    if row.state == IncidentState.ACKNOWLEDGED:
        return f"Incident #{row.id} ({target}) was already acknowledged by {config.display_name(row.acknowledged_by or '')}."
    if row.state == IncidentState.RESOLVED:
        return f"Incident #{row.id} ({target}) is resolved: the service recovered."
    return f"Incident #{row.id} ({target}) is not open."


def _minutes(row: IncidentRow) -> int:
    start = row.opened_at or row.first_seen_at
    end = row.resolved_at or start
    return max(0, round((end - start).total_seconds() / 60))


def _resolved_note(row: IncidentRow) -> str:
    return f"Incident #{row.id} resolved after {_minutes(row)} min."
