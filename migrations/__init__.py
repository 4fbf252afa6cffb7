"""Alembic environment and versions for the opsbot schema (shipped inside the wheel)."""
