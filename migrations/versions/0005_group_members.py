"""Shared Slack user group cache: members per group and when Slack said so.

Revision ID: group_members
Revises: audit_event_at_index
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bot.store.models import UtcDateTime

revision: str = "group_members"
down_revision: str | None = "audit_event_at_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "group_members",
        sa.Column("group_id", sa.String(64), nullable=False),
        sa.Column("members", sa.JSON(), nullable=False),
        sa.Column("fetched_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("group_id", name=op.f("pk_group_members")),
    )


def downgrade() -> None:
    op.drop_table("group_members")
