"""Inbound API: client requests (ids, Idempotency-Keys), Alertmanager alerts by fingerprint, who opened an incident.

Revision ID: api_requests
Revises: home_viewers
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bot.store.models import UtcDateTime

revision: str = "api_requests"
down_revision: str | None = "home_viewers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_requests",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("client", sa.String(64), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("body_sha256", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_requests")),
        sa.UniqueConstraint("client", "idempotency_key", name=op.f("uq_api_requests_client_idempotency_key")),
    )
    op.create_table(
        "alerts",
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("service", sa.String(64), nullable=False),
        sa.Column("env", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("starts_at", UtcDateTime(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("fingerprint", name=op.f("pk_alerts")),
    )
    op.create_index("ix_alerts_service_env_state", "alerts", ["service", "env", "state"])
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(sa.Column("source", sa.String(32), nullable=False, server_default="health"))


def downgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("source")
    op.drop_index("ix_alerts_service_env_state", table_name="alerts")
    op.drop_table("alerts")
    op.drop_table("api_requests")
