"""The ``opsbot`` command line: serve, demo, shell, validate, db, audit, digest.

Each subcommand is a thin wrapper: it reads settings once, builds what it needs, and
turns ``OpsbotError`` into a message on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from bot.errors import ConfigError, OpsbotError
from bot.settings import Settings


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="opsbot")
def main() -> None:
    """opsbot: ChatOps for platform teams. Slash commands and approval buttons that run
    YAML runbooks on Kubernetes and AWS, with a hash-chained SQL audit log."""


@main.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="Config file [env OPSBOT_CONFIG, default ./opsbot.yaml].")
@click.option("--runbooks", "runbooks_dir", type=click.Path(path_type=Path), help="Runbooks directory [env OPSBOT_RUNBOOKS_DIR].")
def validate(config_path: Path | None, runbooks_dir: Path | None) -> None:
    """Check the config and every runbook; print each problem as file:line: field: message."""
    from bot.catalog import check_files

    settings = Settings()
    config_file = config_path or settings.config_path
    directory = runbooks_dir or settings.runbooks_dir
    result = check_files(config_file, directory)
    for problem in result.problems:
        click.echo(problem, err=True)
    if result.problems:
        click.echo(f"{len(result.problems)} problem(s) found.", err=True)
        sys.exit(1)
    assert result.config is not None
    click.echo(
        f"OK: {config_file} ({len(result.config.services)} services, {len(result.config.policy.rules)} policy rules) "
        f"and {len(result.runbooks)} runbooks in {directory}."
    )


# Subcommands live in their own modules and register here, after ``main`` exists.
from bot.cli_db import audit, db  # noqa: E402
from bot.cli_digest import digest  # noqa: E402
from bot.cli_serve import serve  # noqa: E402
from bot.cli_shell import demo, shell  # noqa: E402

for command in (serve, demo, shell, db, audit, digest):
    main.add_command(command)


def fail(error: OpsbotError) -> None:
    """Print an opsbot error for a terminal user and exit 1."""
    if isinstance(error, ConfigError):
        for problem in error.problems:
            click.echo(problem, err=True)
    else:
        click.echo(f"error: {error.user_message}", err=True)
    sys.exit(1)


if __name__ == "__main__":
    main()
