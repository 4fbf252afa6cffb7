"""``opsbot digest --print``: build the health digest and show it in the terminal, posting nothing.

Useful to check a digest's selection and wording before it goes to a channel, and to see
the fleet's health from a laptop with the same kubeconfig and AWS credentials the bot uses.
It reads the database (changes, approvals, locks) but writes nothing, not even
``digest_state``, so a printed digest never makes a quiet one skip.
"""

from __future__ import annotations

import sys

import click

from bot.errors import OpsbotError
from bot.messages import Message, MessageRef


@click.command("digest")
@click.option("--channel", help="Print the digest configured for this channel (default: every configured digest).")
@click.option("--print", "print_only", is_flag=True, help="Print the digest here instead of posting it (required).")
def digest(channel: str | None, print_only: bool) -> None:
    """Build the health digest and print it (nothing is posted)."""
    from bot.backends import Backends
    from bot.cli.fail import fail
    from bot.serve.wiring import load_settings_catalog
    from bot.service_health import ServiceHealth
    from bot.settings import Settings
    from bot.shell.render import render_message
    from bot.store.database import Database
    from bot.store.migrate import current_revision
    from bot.store.models import utcnow
    from bot.watch.digest_content import HealthItem
    from bot.watch.digest_render import render_digest
    from bot.watch.digests import Digests, gather_health
    from bot.watch.insights_service import Insights

    if not print_only:
        click.echo(
            "error: opsbot digest needs --print: it shows a digest here and posts nothing. Digests reach Slack on their "
            "schedule (channels.digests in the config, posted by opsbot serve) or from chat with `/ops digest [channel]`.",
            err=True,
        )
        sys.exit(1)
    settings = Settings()
    try:
        catalog = load_settings_catalog(settings)
    except OpsbotError as error:
        fail(error)
    database = Database(settings.database_url.get_secret_value())
    if current_revision(database) is None:
        click.echo("error: the database has no opsbot schema; run `opsbot db upgrade` first", err=True)
        sys.exit(1)
    backends = Backends(catalog.config, settings)

    def health(items: list[HealthItem]) -> list[ServiceHealth]:
        return gather_health(backends, items)

    insights = Insights(catalog=catalog, database=database, clock=utcnow)
    digests = Digests(catalog=catalog, database=database, notifier=_NothingPosted(), clock=utcnow, health=health, insights=insights)
    selected = [digests.for_channel(channel)] if channel else digests.configured or [digests.for_channel("terminal")]
    for index, chosen in enumerate(selected):
        if index:
            click.echo()
        click.echo(f"── digest for #{chosen.channel} ({chosen.cron}, {chosen.timezone}) ──")
        for line in render_message(render_digest(digests.build(chosen)), catalog.config.display_name, []):
            click.echo(line)
    database.dispose()


class _NothingPosted:
    """The notifier of a printed digest: ``Digests.build`` never posts, this only satisfies the type."""

    def post(self, channel: str, message: Message, *, thread: MessageRef | None = None) -> MessageRef | None:
        return None

    def update(self, ref: MessageRef, message: Message) -> None:
        return None

    def upload(self, channel: str, title: str, content: str | bytes, *, thread: MessageRef | None = None) -> None:
        return None
