"""``opsbot insights``: delivery figures from the audit log in the terminal (a table with sparklines, or JSON/CSV).

It reads the database only (the audit log), never Slack or the clusters, so it works from a
laptop with the database URL, and ``--format json|csv`` feeds other tools.
"""

from __future__ import annotations

import sys

import click

from bot.errors import OpsbotError, UsageError


@click.command("insights")
@click.argument("service", required=False)
@click.argument("env", required=False)
@click.option("--window", help="How many whole days, like 7d or 28 (default: insights.window in the config, 28d).")
@click.option("--timezone", "zone", help="Where a day starts, an IANA name like Europe/Berlin (default: insights.timezone).")
@click.option("--format", "output", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
def insights(service: str | None, env: str | None, window: str | None, zone: str | None, output: str) -> None:
    """Deploys, change failure rate, time to restore, approval waits and run durations, against the previous window."""
    from bot.cli.fail import fail
    from bot.serve.wiring import load_settings_catalog
    from bot.settings import Settings
    from bot.store.database import Database
    from bot.store.migrate import current_revision
    from bot.store.models import utcnow
    from bot.watch.insights_render import insights_csv, insights_json, insights_table
    from bot.watch.insights_service import Insights

    settings = Settings()
    try:
        catalog = load_settings_catalog(settings)
        days = window_days(window)
    except OpsbotError as error:
        fail(error)
    database = Database(settings.database_url.get_secret_value())
    try:
        if current_revision(database) is None:
            click.echo("error: the database has no opsbot schema; run `opsbot db upgrade` first", err=True)
            sys.exit(1)
        try:
            report = Insights(catalog=catalog, database=database, clock=utcnow).report(service=service, env=env, days=days, zone=zone)
        except OpsbotError as error:
            fail(error)
    finally:
        database.dispose()
    if output == "json":
        click.echo(insights_json(report))
    elif output == "csv":
        click.echo(insights_csv(report), nl=False)
    else:
        for line in insights_table(report):
            click.echo(line)


def window_days(text: str | None) -> int | None:
    """``7d`` or ``7`` → 7; None keeps the configured window."""
    from commands.durations import parse_duration

    if text is None:
        return None
    if text.strip().isdigit():
        return int(text)
    try:
        length = parse_duration(text)
    except ValueError as error:
        raise UsageError(f"--window {text!r} is not a number of days; use forms like 7d or 28") from error
    if length.total_seconds() % 86_400:
        raise UsageError(f"--window {text!r} is not a whole number of days; use forms like 7d or 28")
    return int(length.total_seconds() // 86_400)
