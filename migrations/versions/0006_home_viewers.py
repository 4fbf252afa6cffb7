"""App Home: who has opened it (only they are republished) and the home view last published for each.

Revision ID: home_viewers
Revises: group_members
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bot.store.models import UtcDateTime

revision: str = "home_viewers"
down_revision: str | None = "group_members"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "home_viewers",
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("first_opened_at", UtcDateTime(), nullable=False),
        sa.Column("last_opened_at", UtcDateTime(), nullable=False),
        sa.Column("view_id", sa.String(64), nullable=True),
        sa.Column("published_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_home_viewers")),
    )


def downgrade() -> None:
    op.drop_table("home_viewers")
