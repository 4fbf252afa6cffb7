"""``INSERT … ON CONFLICT DO NOTHING``: add a row unless its key is taken, in one statement.

Why not a savepoint around the INSERT (catching ``IntegrityError``): on PostgreSQL that is three
round trips (``SAVEPOINT``, ``INSERT``, ``RELEASE``) where one does, and it sits on the path of
every click (the replay check, the vote, the target's lock; docs/benchmarks.md, click to
rollout). PostgreSQL and SQLite both have the clause; a concurrent insert of the same key waits
for the first and then inserts nothing, so "True" still means this call's row went in.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import inspect
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bot.store.models import Base


def insert_new(session: Session, model: type[Base], values: dict[str, Any], *, key: list[str]) -> bool:
    """Insert a ``model`` row with ``values`` unless one with the same ``key`` columns exists; True if it was inserted.

    PostgreSQL and SQLite are the only databases opsbot accepts (``bot.store.database``), so there is no other path.
    """
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    first_column = inspect(model).primary_key[0]
    statement = insert(model).values(**values).on_conflict_do_nothing(index_elements=key).returning(first_column)
    # RETURNING, not rowcount: psycopg reports -1 for an ORM-level INSERT … ON CONFLICT.
    return session.execute(statement).first() is not None
