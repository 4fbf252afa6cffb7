"""Where each setting comes from: an explicit argument, then ``NAME``, then the file ``NAME_FILE`` names.

The README's configuration reference promises every setting from the environment or, for a
Kubernetes Secret mount, from a file (``NAME_FILE=/path``); names match whatever their case.
These tests read real environment variables and files, as a pod would give them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from bot.settings import Settings


@pytest.fixture(autouse=True)
def no_opsbot_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts from an environment without the developer's own OPSBOT_ and SLACK_ variables."""
    for name in list(os.environ):
        if name.upper().startswith(("OPSBOT_", "SLACK_")):
            monkeypatch.delenv(name)


def test_unset_settings_take_their_documented_defaults() -> None:
    settings = Settings()

    assert (settings.port, settings.workers, settings.runbooks_dir, settings.slack_bot_token) == (3000, 1, Path("runbooks"), None)
    assert settings.database_url.get_secret_value() == "sqlite:///opsbot.db"


def test_a_variable_is_read_and_converted_whatever_the_case_of_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSBOT_PORT", "8080")
    monkeypatch.setenv("opsbot_scheduler", "false")
    monkeypatch.setenv("OPSBOT_CONFIG", "/etc/opsbot/opsbot.yaml")

    settings = Settings()

    assert (settings.port, settings.run_scheduler, settings.config_path) == (8080, False, Path("/etc/opsbot/opsbot.yaml"))


def test_a_secret_comes_from_the_file_its_file_variable_names(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "token").write_text("xoxb-from-a-file\n", encoding="utf-8")
    monkeypatch.setenv("SLACK_BOT_TOKEN_FILE", str(tmp_path / "token"))

    token = Settings().slack_bot_token

    assert token is not None and token.get_secret_value() == "xoxb-from-a-file"


def test_an_argument_wins_over_the_variable_and_the_variable_over_its_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "url").write_text("sqlite:///from-file.db", encoding="utf-8")
    monkeypatch.setenv("OPSBOT_DATABASE_URL_FILE", str(tmp_path / "url"))
    monkeypatch.setenv("OPSBOT_DATABASE_URL", "sqlite:///from-variable.db")
    monkeypatch.setenv("OPSBOT_INSTANCE_ID", "from-variable")

    from_variable = Settings()
    by_variable_name = Settings(OPSBOT_DATABASE_URL=SecretStr("sqlite:///given.db"))
    by_field_name = Settings(instance_id="given")

    assert from_variable.database_url.get_secret_value() == "sqlite:///from-variable.db"
    assert by_variable_name.database_url.get_secret_value() == "sqlite:///given.db"
    assert (by_field_name.instance_id, by_field_name.database_url.get_secret_value()) == ("given", "sqlite:///from-variable.db")


def test_a_bad_value_is_refused_naming_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSBOT_WORKERS", "0")

    with pytest.raises(ValidationError) as refused:
        Settings()

    assert refused.value.title == "Settings"
    assert [problem["loc"] for problem in refused.value.errors()] == [("OPSBOT_WORKERS",)]
