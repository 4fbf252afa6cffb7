"""`opsbot --help` and `opsbot validate` load only what they use, so they answer in a fraction of a second.

Timings live in benchmarks/startup.py; these tests check the cause, in a fresh interpreter each:
which libraries the command imported. The help listing is drawn from a table in bot/cli/main.py,
so a test also keeps that table equal to each command's own help.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import click

from bot.cli.main import SUBCOMMANDS, main
from tests.conftest import EXAMPLE_CONFIG, REPO, RUNBOOKS

PROBE = """
import json, sys
from bot.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)))
"""


def modules_loaded_by(*args: str) -> set[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OPSBOT_", "SLACK_"))}
    env.update(OPSBOT_CONFIG=str(EXAMPLE_CONFIG), OPSBOT_RUNBOOKS_DIR=str(RUNBOOKS))
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    modules: list[str] = json.loads(result.stdout.strip().splitlines()[-1])
    return {name.split(".", 1)[0] for name in modules} | set(modules)  # packages and the exact modules


def test_help_lists_every_subcommand_with_its_own_help_line() -> None:
    context = click.Context(main)

    for name, (_module, _attribute, summary) in SUBCOMMANDS.items():
        command = main.get_command(context, name)
        assert command is not None and command.name == name
        assert summary == command.get_short_help_str(limit=1000), name


def test_help_loads_no_database_settings_or_cloud_library() -> None:
    loaded = modules_loaded_by("--help")

    assert loaded.isdisjoint({"sqlalchemy", "pydantic", "pydantic_settings", "kubernetes", "boto3", "slack_bolt", "yaml"})


def test_validate_loads_no_database_or_cloud_client() -> None:
    loaded = modules_loaded_by("validate")

    assert "bot.catalog.catalog" in loaded, "validate really ran"
    assert loaded.isdisjoint({"sqlalchemy", "kubernetes", "boto3", "botocore.session", "dulwich.client", "slack_bolt", "slack_sdk"})


def test_validate_loads_no_http_git_or_yaml_editing_library() -> None:
    """The action modules give validate their argument models; the libraries that carry out a step load when one runs."""
    loaded = modules_loaded_by("validate")
    clients = {"urllib3", "urllib.request", "http.client", "dulwich", "ruamel", "botocore"}

    assert "bot.backends.http_request" in loaded and "bot.backends.gitops.change_actions" in loaded, "the actions were registered"
    assert loaded.isdisjoint(clients), sorted(loaded & clients)
