"""Replay protection: signatures of Slack requests already acted on.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bot.store.models import UtcDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "seen_requests",
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("seen_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_seen_requests")),
    )
    op.create_index(op.f("ix_seen_requests_seen_at"), "seen_requests", ["seen_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_seen_requests_seen_at"), table_name="seen_requests")
    op.drop_table("seen_requests")
