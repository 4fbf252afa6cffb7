"""``opsbot shell`` and ``opsbot demo``: the text front end, on real or in-process fake infrastructure."""

from __future__ import annotations

import dataclasses
import sys
import tempfile
from pathlib import Path

import click

from bot.errors import OpsbotError
from bot.settings import Settings

DEMO_INTRO = """\
opsbot demo: the Slack code path in your terminal. No Slack, no cluster: an in-process fake
Kubernetes API server (and a moto server for ECS/ASG) seeded with {services}.
"""


@click.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="Config file [env OPSBOT_CONFIG, default ./opsbot.yaml].")
@click.option("--runbooks", "runbooks_dir", type=click.Path(path_type=Path), help="Runbooks directory [env OPSBOT_RUNBOOKS_DIR].")
@click.option("--user", default=None, help="Act as this user (id or name from users: in the config) [default: the config's first user].")
@click.option("--channel", default="C0OPS", show_default=True, help="The channel you type in.")
def shell(config_path: Path | None, runbooks_dir: Path | None, user: str | None, channel: str) -> None:
    """The text front end on your real config, database and clusters (same code path as Slack)."""
    from bot.cli.fail import fail
    from bot.serve.wiring import build_core, load_settings_catalog
    from bot.shell.session import ShellNotifier, ShellSession, UnknownUser

    # The shell is one person's terminal, not a replica: it must never claim a digest or
    # health-watch slot that a production replica should post to Slack.
    overrides: dict[str, object] = {"run_scheduler": False}
    if config_path is not None:
        overrides["config_path"] = config_path
    if runbooks_dir is not None:
        overrides["runbooks_dir"] = runbooks_dir
    settings = Settings().model_copy(update=overrides)
    quiet_terminal_logging()
    try:
        catalog = load_settings_catalog(settings)
        notifier = ShellNotifier(sys.stdout, catalog.config.users)
        core = build_core(settings, notifier=notifier, catalog=catalog)
    except OpsbotError as error:
        fail(error)
    _require_schema(core.database)
    core.start_background()
    try:
        session = ShellSession(core, notifier, user=user, channel=channel, output=sys.stdout)
        sys.stdout.write(session.banner())
        session.run(sys.stdin)
    except UnknownUser as error:
        fail(error)
    finally:
        core.close()


def quiet_terminal_logging() -> None:
    """Warnings and errors only, and none of the HTTP libraries' retry chatter in the middle of the chat.

    A cluster that does not answer is reported by opsbot itself in the reply; urllib3's
    ``Retrying (…)`` lines on the same terminal would interleave with it.
    """
    import logging

    from bot.logs import configure_logging

    configure_logging("WARNING", "text")
    for library in ("urllib3", "kubernetes", "botocore", "boto3", "slack_sdk"):
        logging.getLogger(library).setLevel(logging.ERROR)


@click.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=Path("opsbot.example.yaml"), show_default=True)
@click.option("--runbooks", "runbooks_dir", type=click.Path(path_type=Path), default=Path("runbooks"), show_default=True)
@click.option("--user", default=None, help="Act as this user [default: the config's first user].")
@click.option("--channel", default="C0OPS", show_default=True)
@click.option("--tick-seconds", default=0.5, show_default=True, help="How fast the fake cluster moves (smaller is faster).")
def demo(config_path: Path, runbooks_dir: Path, user: str | None, channel: str, tick_seconds: float) -> None:
    """The shell against in-process fakes: embedded SQLite, fake Kubernetes, moto for AWS."""
    from bot.catalog.catalog import load_catalog
    from bot.cli.fail import fail
    from bot.requests.builtin_specs import BUILTIN_SPECS
    from bot.serve.wiring import build_core
    from bot.shell.session import ShellNotifier, ShellSession, UnknownUser
    from bot.store.migrate import upgrade

    try:
        from fakes.demo import DemoEnvironment
    except ImportError:
        raise click.ClickException(
            "opsbot demo needs the fakes package of a source checkout (it is not shipped in the image): "
            "run ./scripts/demo from a clone of the repository"
        ) from None
    quiet_terminal_logging()
    try:
        catalog = load_catalog(config_path, runbooks_dir, builtins=BUILTIN_SPECS)
    except OpsbotError as error:
        fail(error)
    with (
        tempfile.TemporaryDirectory(prefix="opsbot-demo-") as workdir,
        DemoEnvironment(
            catalog.config, Path(workdir), tick_seconds=tick_seconds, seconds_per_tick=max(tick_seconds, 1.0) * 10
        ) as environment,
    ):
        demo_catalog = dataclasses.replace(catalog, config=environment.config)
        # No scheduler in the demo: a digest firing mid-script would make transcripts depend on the clock.
        settings = Settings(
            OPSBOT_DATABASE_URL=f"sqlite:///{workdir}/opsbot.db",
            OPSBOT_CONFIG=config_path,
            OPSBOT_RUNBOOKS_DIR=runbooks_dir,
            OPSBOT_SCHEDULER=False,
        )
        notifier = ShellNotifier(sys.stdout, demo_catalog.config.users)
        core = build_core(settings, notifier=notifier, catalog=demo_catalog)
        upgrade(core.database)
        environment.seed_history(core.database)
        core.start_background()
        try:
            session = ShellSession(core, notifier, user=user, channel=channel, output=sys.stdout)
            sys.stdout.write(DEMO_INTRO.format(services=", ".join(demo_catalog.config.services)) + session.banner())
            session.run(sys.stdin)
            from bot.store.audit import verify

            report = verify(core.database)
            state = "intact" if report.broken is None else f"BROKEN: {report.broken}"
            sys.stdout.write(f"Audit log: {report.rows} events, chain {state}.\n")
        except UnknownUser as error:
            fail(error)
        finally:
            core.close()


def _require_schema(database: object) -> None:
    from bot.store.database import Database
    from bot.store.migrate import current_revision, head_revision

    assert isinstance(database, Database)
    current = current_revision(database)
    if current != head_revision():
        click.echo(
            f"error: the database schema is at {current or 'empty'}, this opsbot needs {head_revision()}: run `opsbot db upgrade`.",
            err=True,
        )
        sys.exit(1)
