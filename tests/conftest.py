"""Shared fixtures: databases (SQLite file and a fresh PostgreSQL schema), the example catalog.

PostgreSQL is never skipped silently: if it is unreachable the PostgreSQL tests fail,
unless OPSBOT_SKIP_POSTGRES=1 is set on purpose (and then they say so as skips).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from bot.catalog.catalog import Catalog, load_catalog
from bot.requests.builtins import BUILTIN_SPECS
from bot.store.database import Database
from bot.store.migrate import upgrade

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_CONFIG = REPO / "opsbot.example.yaml"
RUNBOOKS = REPO / "runbooks"
POSTGRES_ADMIN_URL = os.environ.get("OPSBOT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _postgres_or_fail() -> None:
    if os.environ.get("OPSBOT_SKIP_POSTGRES") == "1":
        pytest.skip("OPSBOT_SKIP_POSTGRES=1: PostgreSQL tests deliberately skipped")
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=5):
            pass
    except psycopg.OperationalError as error:
        pytest.fail(f"PostgreSQL is unreachable at {POSTGRES_ADMIN_URL} ({error}); start it (see .ci/run) or set OPSBOT_SKIP_POSTGRES=1")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A SQLAlchemy URL whose search_path is a brand-new schema, dropped afterwards."""
    _postgres_or_fail()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    base = POSTGRES_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://", 1)
    separator = "&" if "?" in base else "?"
    yield f"{base}{separator}options=-csearch_path%3D{schema}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'opsbot.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using this runs twice: on a SQLite file and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'opsbot.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    """A migrated, empty database of each kind."""
    db = Database(database_url)
    upgrade(db)
    yield db
    db.dispose()


@pytest.fixture(scope="session")
def example_catalog() -> Catalog:
    """The shipped opsbot.example.yaml and runbooks/, validated."""
    return load_catalog(EXAMPLE_CONFIG, RUNBOOKS, builtins=BUILTIN_SPECS)
