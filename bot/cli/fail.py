"""How every ``opsbot`` subcommand ends on an opsbot error: the message on stderr, exit 1, never a traceback."""

from __future__ import annotations

import sys
from typing import NoReturn

import click

from bot.errors import ConfigError, OpsbotError


def fail(error: OpsbotError) -> NoReturn:
    """Print an opsbot error for a terminal user and exit 1."""
    if isinstance(error, ConfigError):
        for problem in error.problems:
            click.echo(problem, err=True)
    else:
        click.echo(f"error: {error.user_message}", err=True)
    sys.exit(1)
