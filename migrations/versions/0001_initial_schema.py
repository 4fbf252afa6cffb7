"""Initial schema: requests, approvals, audit chain, locks, job slots, incidents, digest state.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bot.store.models import UtcDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GENESIS_HASH = "0" * 64
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "requests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("runbook", sa.String(64), nullable=False),
        sa.Column("service", sa.String(64), nullable=False),
        sa.Column("env", sa.String(64), nullable=False),
        sa.Column("target_kind", sa.String(16), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("params_hash", sa.String(64), nullable=False),
        sa.Column("plan", sa.JSON(), nullable=False),
        sa.Column("plan_hash", sa.String(64), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("requester_id", sa.String(64), nullable=False),
        sa.Column("requester_name", sa.String(128), nullable=False),
        sa.Column("channel", sa.String(128), nullable=False),
        sa.Column("approvals_required", sa.Integer(), nullable=False),
        sa.Column("approver_groups", sa.JSON(), nullable=False),
        sa.Column("policy_reason", sa.Text(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=True),
        sa.Column("finished_at", UtcDateTime(), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("message_ref", sa.JSON(), nullable=True),
        sa.Column("runner_id", sa.String(128), nullable=True),
        sa.Column("lease_expires_at", UtcDateTime(), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_requests")),
    )
    op.create_index(op.f("ix_requests_state"), "requests", ["state"])
    op.create_index("ix_requests_service_env_id", "requests", ["service", "env", "id"])

    op.create_table(
        "approvals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("user_name", sa.String(128), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("params_hash", sa.String(64), nullable=False),
        sa.Column("plan_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["request_id"], ["requests.id"], name=op.f("fk_approvals_request_id_requests"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approvals")),
        sa.UniqueConstraint("request_id", "user_id", name=op.f("uq_approvals_request_id_user_id")),
    )
    op.create_index(op.f("ix_approvals_request_id"), "approvals", ["request_id"])

    op.create_table(
        "audit_events",
        sa.Column("seq", BigId, autoincrement=False, nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("event", sa.String(40), nullable=False),
        sa.Column("actor_id", sa.String(64), nullable=False),
        sa.Column("actor_name", sa.String(128), nullable=False),
        sa.Column("channel", sa.String(128), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=True),
        sa.Column("runbook", sa.String(64), nullable=False),
        sa.Column("service", sa.String(64), nullable=False),
        sa.Column("env", sa.String(64), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("outcome", sa.String(40), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_events")),
        sa.UniqueConstraint("hash", name=op.f("uq_audit_events_hash")),
    )
    op.create_index(op.f("ix_audit_events_request_id"), "audit_events", ["request_id"])
    op.create_index("ix_audit_events_service_seq", "audit_events", ["service", "seq"])
    op.create_index("ix_audit_events_at", "audit_events", ["at"])

    audit_head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", BigId, nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    op.bulk_insert(audit_head, [{"id": 1, "seq": 0, "last_hash": GENESIS_HASH}])

    op.create_table(
        "target_locks",
        sa.Column("service", sa.String(64), nullable=False),
        sa.Column("env", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=True),
        sa.Column("runbook", sa.String(64), nullable=False),
        sa.Column("holder_id", sa.String(64), nullable=False),
        sa.Column("holder_name", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("acquired_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("service", "env", name=op.f("pk_target_locks")),
    )

    op.create_table(
        "job_slots",
        sa.Column("job_id", sa.String(128), nullable=False),
        sa.Column("slot", sa.String(40), nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("claimed_at", UtcDateTime(), nullable=False),
        sa.Column("finished_at", UtcDateTime(), nullable=True),
        sa.Column("outcome", sa.String(40), nullable=True),
        sa.PrimaryKeyConstraint("job_id", "slot", name=op.f("pk_job_slots")),
    )

    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("service", sa.String(64), nullable=False),
        sa.Column("env", sa.String(64), nullable=False),
        sa.Column("open_key", sa.String(140), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("first_seen_at", UtcDateTime(), nullable=False),
        sa.Column("opened_at", UtcDateTime(), nullable=True),
        sa.Column("resolved_at", UtcDateTime(), nullable=True),
        sa.Column("acknowledged_by", sa.String(64), nullable=True),
        sa.Column("message_ref", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incidents")),
        sa.UniqueConstraint("open_key", name=op.f("uq_incidents_open_key")),
    )

    op.create_table(
        "digest_state",
        sa.Column("channel", sa.String(128), nullable=False),
        sa.Column("last_posted_at", UtcDateTime(), nullable=True),
        sa.Column("last_fingerprint", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("channel", name=op.f("pk_digest_state")),
    )


def downgrade() -> None:
    for table in ("digest_state", "incidents", "job_slots", "target_locks", "audit_head", "audit_events", "approvals", "requests"):
        op.drop_table(table)
