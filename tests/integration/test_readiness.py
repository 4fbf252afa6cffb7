"""``/readyz`` during a rolling upgrade: a newer schema keeps old pods serving, an older one does not.

The upgrade's migration hook runs before any new pod starts. Old pods (this build) then see a
revision they do not know; making them unready would leave Slack with no pod at all until the
new ones start. A revision this build knows but that is behind its head means the migration
did not run, and the pod must not serve.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.store.database import Database
from bot.store.migrate import head_revision, known_revisions
from tests.integration.slack_support import (
    RunningServer,
    fake_slack,
    serve_touch_catalog,
)


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[RunningServer]:
    with fake_slack() as slack, serve_touch_catalog(slack, tmp_path, database_url) as running:
        yield running


def test_a_schema_migrated_by_a_newer_opsbot_keeps_this_pod_ready(server: RunningServer) -> None:
    assert server.http.get("/readyz").json() == {"status": "ready"}
    newer = "9999_from_the_next_release"
    assert newer not in known_revisions()

    set_revision(server.opsbot.database, newer)

    assert server.http.get("/readyz").json() == {"status": "ready"}


def test_a_known_but_older_schema_makes_the_pod_unready(server: RunningServer) -> None:
    older = sorted(known_revisions() - {head_revision()})[-1]

    set_revision(server.opsbot.database, older)

    response = server.http.get("/readyz")
    assert response.status_code == 503
    assert response.json()["problems"] == {
        "migrations": f"schema is at {older}, this opsbot needs {head_revision()}: run `opsbot db upgrade`"
    }


def set_revision(database: Database, revision: str) -> None:
    """What ``alembic upgrade``/``downgrade`` leave behind in ``alembic_version`` (the probe reads nothing else)."""
    with database.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = :revision"), {"revision": revision})
