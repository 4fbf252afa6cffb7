"""The store layer: all SQL lives here (SQLite by default, PostgreSQL in production)."""

from bot.store.database import Database

__all__ = ["Database"]
