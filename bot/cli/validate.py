"""``opsbot validate``: check the config and every runbook before a pull request merges."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from bot.settings import Settings


@click.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="Config file [env OPSBOT_CONFIG, default ./opsbot.yaml].")
@click.option("--runbooks", "runbooks_dir", type=click.Path(path_type=Path), help="Runbooks directory [env OPSBOT_RUNBOOKS_DIR].")
def validate(config_path: Path | None, runbooks_dir: Path | None) -> None:
    """Check the config and every runbook; print each problem as file:line: field: message."""
    from bot.catalog.catalog import check_files
    from bot.requests.builtins import BUILTIN_SPECS

    settings = Settings()
    config_file = config_path or settings.config_path
    directory = runbooks_dir or settings.runbooks_dir
    result = check_files(config_file, directory, builtins=BUILTIN_SPECS)
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
