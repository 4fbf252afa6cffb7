"""SQLAlchemy models: requests, approvals, the audit chain, locks, job slots, incidents.

Timestamps are timezone-aware UTC. JSON that is hashed (audit params/details) is stored
as the exact canonical text that was hashed, so ``audit verify`` never depends on how a
database re-serializes JSON.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, MetaData, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out, on SQLite (which stores naive) as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use datetime.now(UTC)")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class RequestRow(Base):
    """A request to run a runbook, and where it is in its life."""

    __tablename__ = "requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    runbook: Mapped[str] = mapped_column(String(64))
    service: Mapped[str] = mapped_column(String(64))
    env: Mapped[str] = mapped_column(String(64))
    target_kind: Mapped[str] = mapped_column(String(16))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    params_hash: Mapped[str] = mapped_column(String(64))
    plan: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    plan_hash: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(32), index=True)
    requester_id: Mapped[str] = mapped_column(String(64))
    requester_name: Mapped[str] = mapped_column(String(128))
    channel: Mapped[str] = mapped_column(String(128))
    approvals_required: Mapped[int] = mapped_column(Integer, default=0)
    approver_groups: Mapped[list[str]] = mapped_column(JSON, default=list)
    policy_reason: Mapped[str] = mapped_column(Text, default="")
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    result: Mapped[str | None] = mapped_column(Text, nullable=True)
    message_ref: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    runner_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (Index("ix_requests_service_env_id", "service", "env", "id"),)


class ApprovalRow(Base):
    """One person's decision on a request; one per person per request."""

    __tablename__ = "approvals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str] = mapped_column(String(64))
    user_name: Mapped[str] = mapped_column(String(128))
    decision: Mapped[str] = mapped_column(String(16))
    params_hash: Mapped[str] = mapped_column(String(64))
    plan_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("request_id", "user_id"),)


class AuditEventRow(Base):
    """An append-only, hash-chained record; never updated or deleted by opsbot."""

    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    event: Mapped[str] = mapped_column(String(40))
    actor_id: Mapped[str] = mapped_column(String(64))
    actor_name: Mapped[str] = mapped_column(String(128))
    channel: Mapped[str] = mapped_column(String(128))
    request_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    runbook: Mapped[str] = mapped_column(String(64))
    service: Mapped[str] = mapped_column(String(64))
    env: Mapped[str] = mapped_column(String(64))
    params: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(40))
    details: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)

    __table_args__ = (
        Index("ix_audit_events_service_seq", "service", "seq"),
        Index("ix_audit_events_at", "at"),
        # Delivery insights read a few event kinds over a time span (bot/store/insights.py).
        Index("ix_audit_events_event_at", "event", "at"),
    )


class AuditHeadRow(Base):
    """The chain's tip: one row, locked by every append so the chain has one order."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    last_hash: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    """The fingerprint of the HMAC key the chain is hashed with since its key-introduction row; None: plain SHA-256."""


class TargetLockRow(Base):
    """Who holds a service/env: a running request or a person's explicit lock."""

    __tablename__ = "target_locks"

    service: Mapped[str] = mapped_column(String(64), primary_key=True)
    env: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    request_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    runbook: Mapped[str] = mapped_column(String(64), default="")
    holder_id: Mapped[str] = mapped_column(String(64))
    holder_name: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text, default="")
    acquired_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)


class JobSlotRow(Base):
    """A scheduled job's time slot, claimed by exactly one replica."""

    __tablename__ = "job_slots"

    job_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    slot: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner: Mapped[str] = mapped_column(String(128))
    claimed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(40), nullable=True)


class IncidentRow(Base):
    """A degraded service, open until it recovers; ``open_key`` makes one open per target."""

    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    service: Mapped[str] = mapped_column(String(64))
    env: Mapped[str] = mapped_column(String(64))
    open_key: Mapped[str | None] = mapped_column(String(140), nullable=True, unique=True)
    state: Mapped[str] = mapped_column(String(16))
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    first_seen_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    opened_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    message_ref: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    source: Mapped[str] = mapped_column(String(32), default="health", server_default="health")
    """Who opened it: ``health`` (the watch, which also resolves it) or ``alertmanager`` (resolved by the alert)."""


class DigestStateRow(Base):
    """What the last digest to a channel showed, so ``quiet`` can skip an unchanged one."""

    __tablename__ = "digest_state"

    channel: Mapped[str] = mapped_column(String(128), primary_key=True)
    last_posted_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_fingerprint: Mapped[str] = mapped_column(String(64), default="")


class SeenRequestRow(Base):
    """A signed Slack request already acted on; a second one with the same signature is a replay."""

    __tablename__ = "seen_requests"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class GroupMembersRow(Base):
    """A Slack user group's members as Slack last said, shared by every process and replica.

    One answer for all: an executor must not approve from a membership another already saw
    change, and one ``usergroups.users.list`` call serves them all (it is rate tier 2).
    """

    __tablename__ = "group_members"

    group_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    members: Mapped[list[str]] = mapped_column(JSON, default=list)
    fetched_at: Mapped[datetime] = mapped_column(UtcDateTime)


class HomeViewerRow(Base):
    """A person who has opened opsbot's App Home: only they get it republished when something of theirs changes.

    ``view_id`` is the home view opsbot last published for them (``views.publish`` answers it): a
    click from the App Home counts only when it comes from that view (``bot.requests.approvals``).
    """

    __tablename__ = "home_viewers"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    first_opened_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_opened_at: Mapped[datetime] = mapped_column(UtcDateTime)
    view_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    published_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class ApiRequestRow(Base):
    """A request an inbound-API client made (``POST /api/v1/requests``), before and after it became an opsbot request.

    The HTTP worker writes it (the id the client is given, its Idempotency-Key); the executor
    settles it: ``created`` with the request it became, or ``denied``/``refused``/``answered``/``failed`` with why.
    """

    __tablename__ = "api_requests"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    client: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    body_sha256: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    request_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("client", "idempotency_key"),)


class AlertRow(Base):
    """An Alertmanager alert by fingerprint: the first replica to insert or flip it acts, every copy after is a repeat."""

    __tablename__ = "alerts"

    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    service: Mapped[str] = mapped_column(String(64))
    env: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime)
    summary: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (Index("ix_alerts_service_env_state", "service", "env", "state"),)
