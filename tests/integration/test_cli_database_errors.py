"""Every `opsbot` command that uses the database ends with one line when it cannot, never a traceback.

Run as a user would: the CLI as a subprocess with OPSBOT_DATABASE_URL pointing at a
PostgreSQL nobody listens on, a SQLite file in a directory that does not exist, a MySQL URL,
and a password with an unencoded '@' (whose pieces must never be printed).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE_CONFIG, RUNBOOKS
from tests.integration.serve_support import run_cli

DATABASE_COMMANDS = (
    ("db", "current"),
    ("db", "upgrade"),
    ("audit", "verify"),
    ("audit", "tail"),
    ("audit", "export"),
    ("digest", "--print"),
    ("shell",),
)


def environment(url: str) -> dict[str, str]:
    inherited = {key: value for key, value in os.environ.items() if not key.upper().startswith(("SLACK_", "OPSBOT_"))}
    return {**inherited, "OPSBOT_DATABASE_URL": url, "OPSBOT_CONFIG": str(EXAMPLE_CONFIG), "OPSBOT_RUNBOOKS_DIR": str(RUNBOOKS)}


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("command", DATABASE_COMMANDS, ids=" ".join)
def test_postgresql_down_is_one_line(command: tuple[str, ...]) -> None:
    url = f"postgresql+psycopg://opsbot:hunter2secret@127.0.0.1:{closed_port()}/opsbot"
    result = run_cli(environment(url), *command)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: cannot reach the database (OperationalError: connection failed:"), lines[0]
    assert "hunter2secret" not in result.stderr + result.stdout


@pytest.mark.parametrize("command", [("db", "upgrade"), ("audit", "tail"), ("shell",)], ids=" ".join)
def test_sqlite_directory_missing_is_one_line(tmp_path: Path, command: tuple[str, ...]) -> None:
    missing = tmp_path / "no-such-dir"
    result = run_cli(environment(f"sqlite:///{missing}/opsbot.db"), *command)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: the SQLite file's directory {missing} does not exist; create it or change OPSBOT_DATABASE_URL"
    )
    assert not missing.exists()


def test_unsupported_url_names_the_supported_ones() -> None:
    result = run_cli(environment("mysql://opsbot:hunter2secret@db.internal/opsbot"), "db", "current")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: unsupported database URL 'mysql://opsbot:[redacted]@db.internal/opsbot'; opsbot supports "
        "sqlite:///path/opsbot.db or postgresql+psycopg://user:password@host:5432/dbname"
    )


def test_at_sign_in_the_password_never_prints_part_of_it() -> None:
    url = "postgresql+psycopg://opsbot:ter1@ter2PW@127.0.0.1:5432/opsbot"
    for command in (("db", "current"), ("serve",)):
        result = run_cli({**environment(url), "SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s"}, *command)
        assert result.returncode != 0
        assert "ter2PW" not in result.stderr and "ter1" not in result.stderr, result.stderr
        assert "'@' in its password: write it as %40" in result.stderr


def test_db_current_does_not_create_an_empty_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "opsbot.db"
    result = run_cli(environment(f"sqlite:///{path}"), "db", "current")
    assert result.returncode == 1
    assert result.stdout.startswith(f"database: empty (SQLite file {path} is missing); this opsbot: ")
    assert not path.exists()
