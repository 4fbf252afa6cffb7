"""``opsbot insights`` in the terminal: a table with sparklines, JSON and CSV for tools, clear errors."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from click.testing import CliRunner

from bot.audit.events import EventType
from bot.cli.main import main
from bot.store.database import Database
from bot.store.models import utcnow
from tests.conftest import EXAMPLE_CONFIG, RUNBOOKS
from tests.insights_support import Log


@pytest.fixture
def seeded(database: Database, monkeypatch: pytest.MonkeyPatch) -> Database:
    """48 h ago a good deploy of checkout/production, 24 h ago a failed one (always the two days before today)."""
    now, day = utcnow(), timedelta(days=1)
    log = Log(database)
    log.run("deploy", now - 2 * day - timedelta(minutes=4), now - 2 * day, EventType.SUCCEEDED, asked=now - 2 * day - timedelta(minutes=10))
    log.run("deploy", now - day - timedelta(minutes=5), now - day, EventType.FAILED)
    monkeypatch.setenv("OPSBOT_CONFIG", str(EXAMPLE_CONFIG))
    monkeypatch.setenv("OPSBOT_RUNBOOKS_DIR", str(RUNBOOKS))
    monkeypatch.setenv("OPSBOT_DATABASE_URL", database.url)
    return database


def test_the_table_shows_each_target_with_a_sparkline_of_deploys_per_day(seeded: Database) -> None:
    result = CliRunner().invoke(main, ["insights", "checkout", "--window", "7d"])

    assert result.exit_code == 0, result.output
    header, overall, *rows = result.output.splitlines()
    assert header.split()[:3] == ["TARGET", "DEPLOYS", "/WEEK"]
    assert overall.split()[:2] == ["checkout", "1"]
    production = next(row for row in rows if row.startswith("checkout/production"))
    assert "50 %" in production  # one of two changes failed
    assert production.endswith("····█··")  # the good deploy 48 h ago, then nothing (the failure is no deploy)


def test_json_and_csv_carry_every_figure_of_both_windows(seeded: Database) -> None:
    as_json = json.loads(CliRunner().invoke(main, ["insights", "checkout", "production", "--window", "7", "--format", "json"]).output)
    as_csv = list(csv.DictReader(io.StringIO(CliRunner().invoke(main, ["insights", "--format", "csv", "--window", "7d"]).output)))

    [target] = as_json["targets"]
    assert (target["service"], target["env"], as_json["window"]["days"]) == ("checkout", "production", 7)
    assert target["current"]["changes"] == 2 and target["current"]["change_failure_rate"] == 0.5
    assert target["current"]["approval_wait_p50_seconds"] == 360.0
    assert target["current"]["daily_failures"][-2] == 1
    overall = [row for row in as_csv if row["service"] == "*"]
    assert [(row["window"], row["deploys"], row["changes"]) for row in overall] == [("current", "1", "2"), ("previous", "0", "0")]


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["insights", "nope"], "Unknown service 'nope'"),
        (["insights", "--window", "36h"], "not a whole number of days"),
        (["insights", "--timezone", "Mars/Olympus"], "IANA name"),
    ],
)
def test_bad_input_is_a_one_line_error_without_a_traceback(seeded: Database, arguments: list[str], expected: str) -> None:
    result = CliRunner().invoke(main, arguments)

    assert result.exit_code == 1
    assert expected in result.output and "Traceback" not in result.output
