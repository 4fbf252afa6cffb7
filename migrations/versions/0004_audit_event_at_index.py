"""Delivery insights: an index on audit_events (event, at), so the figures read only the events they need.

Revision ID: audit_event_at_index
Revises: audit_head_key_id
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "audit_event_at_index"
down_revision: str | None = "audit_head_key_id"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_audit_events_event_at", "audit_events", ["event", "at"])


def downgrade() -> None:
    op.drop_index("ix_audit_events_event_at", table_name="audit_events")
