"""``opsbot db`` and ``opsbot audit``: schema migrations and the audit log from a terminal."""

from __future__ import annotations

import csv
import json
import sys
from datetime import UTC, datetime

import click

from bot.settings import Settings
from bot.store.database import Database


def _database() -> Database:
    return Database(Settings().database_url.get_secret_value())


@click.group()
def db() -> None:
    """Database schema: upgrade, show the revision, compare models and migrations."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Create or migrate the schema (safe to run from several replicas at once)."""
    from bot.store.migrate import upgrade

    database = _database()
    before, after = upgrade(database, revision)
    if before == after:
        click.echo(f"Schema already at {after}; nothing to do.")
    else:
        click.echo(f"Schema upgraded from {before or 'empty'} to {after}.")


@db.command("current")
def db_current() -> None:
    """Print the schema revision of the database and of this opsbot."""
    from bot.store.migrate import current_revision, head_revision

    database = _database()
    absent = database.missing_file()
    if absent is not None:
        # Connecting would create an empty SQLite file; say what is there instead.
        click.echo(f"database: empty ({absent}); this opsbot: {head_revision()}")
        sys.exit(1)
    current = current_revision(database)
    click.echo(f"database: {current or 'empty'}; this opsbot: {head_revision()}")
    if current != head_revision():
        sys.exit(1)


@db.command("check")
def db_check() -> None:
    """Exit 1 if the models and the migrated schema differ (like `alembic check`)."""
    from bot.store.migrate import schema_differences

    differences = schema_differences(_database())
    for difference in differences:
        click.echo(f"difference: {difference}", err=True)
    if differences:
        sys.exit(1)
    click.echo("Models and migrations agree.")


@click.group()
def audit() -> None:
    """The audit log: tail, export, verify the hash chain."""


@audit.command("tail")
@click.option("-n", "limit", default=20, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--service", default=None, help="Only events of this service.")
@click.option("--request", "request_id", default=None, type=int, help="Only events of this request.")
def audit_tail(limit: int, service: str | None, request_id: int | None) -> None:
    """The newest events, oldest first."""
    from bot.cli.audit_lines import TAIL_HEADER, tail_line
    from bot.store.audit import tail

    database = _database()
    with database.reading() as session:
        rows = tail(session, limit=limit, service=service, request_id=request_id)
    click.echo(TAIL_HEADER)
    for row in rows:
        click.echo(tail_line(row))


@audit.command("export")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True)
@click.option("--since", type=click.DateTime(), default=None, help="UTC, inclusive.")
@click.option("--until", type=click.DateTime(), default=None, help="UTC, exclusive.")
def audit_export(fmt: str, since: datetime | None, until: datetime | None) -> None:
    """Write events to stdout as JSON lines or CSV, with their hashes (verifiable elsewhere)."""
    from bot.store.audit import events_between

    database = _database()
    columns = ["seq", "at", "event", "actor_id", "actor_name", "channel", "request_id", "runbook", "service", "env"]
    columns += ["params", "outcome", "details", "prev_hash", "hash"]
    writer = csv.writer(sys.stdout) if fmt == "csv" else None
    if writer is not None:
        writer.writerow([*columns, "identity"])
    with database.reading() as session:
        for row in events_between(session, since=_utc(since), until=_utc(until)):
            values = {column: getattr(row, column) for column in columns}
            values["at"] = row.at.isoformat()
            details = json.loads(row.details)
            # Who the cloud saw (docs/security.md), lifted out of details for auditors; not hashed twice.
            identity = details.get("identity") if isinstance(details, dict) else None
            if writer is not None:
                writer.writerow([*(values[column] for column in columns), json.dumps(identity) if identity else ""])
            else:
                values["params"] = json.loads(row.params)
                values["details"] = details
                values["identity"] = identity
                sys.stdout.write(json.dumps(values, ensure_ascii=False) + "\n")


@audit.command("verify")
@click.option(
    "--anchors", "anchor_sources", multiple=True, metavar="FILE|s3://BUCKET/PREFIX",
    help="Check the chain against every anchor found there (repeatable): a log export, pasted Slack messages, an audit export, "
    "or the Object Lock bucket opsbot anchors to.",
)  # fmt: skip
def audit_verify(anchor_sources: tuple[str, ...]) -> None:
    """Check the hash chain end to end (with OPSBOT_AUDIT_KEY where it is keyed); exit 1 naming where it breaks."""
    import time

    from bot.cli.audit_anchors import load_anchors
    from bot.store.audit import verify

    settings = Settings()
    anchors = load_anchors(anchor_sources, settings)
    started = time.perf_counter()
    report = verify(_database(), key=settings.audit_key_bytes(), anchors=anchors)
    elapsed = time.perf_counter() - started
    checked = f"checked {report.rows} rows" + (f" against {report.anchors_checked} anchors" if anchors else "") + f" in {elapsed:.1f}s"
    if report.problems:
        for problem in report.problems:
            click.echo(f"BROKEN: {problem}", err=True)
        click.echo(f"({checked})", err=True)
        sys.exit(1)
    keyed = f", keyed since seq {report.keyed_from}" if report.keyed_from is not None else ""
    anchored = f", extends all {report.anchors_checked} anchors" if anchors else ""
    head = f"head seq {report.last_seq} hash {report.last_hash[:16]}…"
    click.echo(f"OK: {report.rows} events, chain intact{keyed}{anchored}, {head} ({elapsed:.1f}s)")


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.replace(tzinfo=UTC)
