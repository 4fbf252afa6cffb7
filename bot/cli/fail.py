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


def fail_on_database(error: BaseException) -> None:
    """If ``error`` is an unusable database URL or an unreachable database, say so in one line and exit 1."""
    from bot.settings import Settings
    from bot.store.database import unreachable_message

    try:
        url = Settings().database_url.get_secret_value()
    except Exception:  # noqa: BLE001 - settings that do not load cannot name a URL; the reason still can
        url = ""
    message = unreachable_message(error, url)
    if message is None:
        return
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def fail_on_settings(error: BaseException) -> None:
    """If ``error`` is a setting from the environment that does not validate, name each one and exit 2.

    pydantic's ``ValidationError`` for ``Settings`` carries the variable and why; a traceback
    for a typo in a Deployment's env would hide both.
    """
    from pydantic import ValidationError

    if not isinstance(error, ValidationError) or error.title != "Settings":
        return
    for problem in error.errors():
        name = ".".join(str(part) for part in problem["loc"]) or "settings"
        given = problem.get("input")
        shown = (
            f"={given!r}"
            if isinstance(given, str | int | float) and "SECRET" not in name and "TOKEN" not in name and "KEY" not in name
            else ""
        )
        click.echo(f"error: setting {name}{shown}: {problem['msg']}", err=True)
    click.echo("See the README's configuration reference for each setting's allowed values.", err=True)
    sys.exit(2)
