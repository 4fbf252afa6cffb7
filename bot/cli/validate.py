"""``opsbot validate``: check the config and every runbook before a pull request merges."""

from __future__ import annotations

import re
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
    from bot.requests.builtin_specs import BUILTIN_SPECS

    settings = Settings()
    config_file = config_path or settings.config_path
    directory = runbooks_dir or settings.runbooks_dir
    result = check_files(config_file, directory, builtins=BUILTIN_SPECS)
    for problem in sorted([*result.problems, *result.warnings], key=_file_and_line):
        click.echo(problem, err=True)
    if result.problems:
        warned = f" and {len(result.warnings)} warning(s)" if result.warnings else ""
        click.echo(f"{len(result.problems)} problem(s){warned} found.", err=True)
        sys.exit(1)
    assert result.config is not None
    warned = f" with {len(result.warnings)} warning(s)" if result.warnings else ""
    click.echo(
        f"OK{warned}: {config_file} ({len(result.config.services)} services, {len(result.config.policy.rules)} policy rules) "
        f"and {len(result.runbooks)} runbooks in {directory}."
    )


def _file_and_line(problem: str) -> tuple[str, int]:
    """Sort key: file, then line number as a number (``deploy.yaml:9`` before ``deploy.yaml:31``)."""
    match = re.match(r"(.*?):(\d+):", problem)
    return (match.group(1), int(match.group(2))) if match else (problem.split(":", 1)[0], 0)
