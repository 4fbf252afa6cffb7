"""Schema migrations through Alembic, safe when several replicas start at once.

Alembic takes no lock of its own. On PostgreSQL we hold a session-level advisory lock
around ``upgrade``, so the second replica waits, then finds the schema at head and does
nothing. SQLite's ``BEGIN IMMEDIATE`` already serializes writers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

import migrations
from bot.store.database import Database
from bot.store.models import Base

MIGRATION_LOCK_KEY = 7_357_001  # any constant unique to opsbot within the database


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def known_revisions() -> frozenset[str]:
    """Every revision this build ships: a database at any other revision was migrated by a newer opsbot."""
    return frozenset(script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions())


def current_revision(database: Database) -> str | None:
    with database.read_engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(database: Database, revision: str = "head") -> tuple[str | None, str | None]:
    """Upgrade to ``revision``; returns (before, after). A no-op when already there."""
    with database.engine.connect() as connection:
        if database.is_postgresql:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            connection.commit()
        try:
            before = MigrationContext.configure(connection).get_current_revision()
            connection.commit()
            command.upgrade(alembic_config(connection), revision)
            connection.commit()
            after = MigrationContext.configure(connection).get_current_revision()
            connection.commit()
        finally:
            if database.is_postgresql:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
                connection.commit()
    return before, after


def schema_differences(database: Database) -> list[Any]:
    """What differs between the models and the migrated database (empty = they agree)."""
    with database.read_engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))
