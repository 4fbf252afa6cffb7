"""The ``opsbot`` command line: serve, demo, shell, validate, db, audit, digest, insights.

Each subcommand is a thin wrapper in its own module: it reads settings once, builds what it
needs (importing only that), and turns ``OpsbotError`` into a message on stderr and a non-zero
exit (``bot.cli.fail``), never a traceback. This module imports none of them until one is
run: ``opsbot --help`` lists them from ``SUBCOMMANDS`` (a unit test keeps those lines equal to
each command's own help), so it starts without SQLAlchemy, pydantic or the cloud clients
(docs/benchmarks.md, start-up).
"""

from __future__ import annotations

import importlib
from typing import Any

import click

SUBCOMMANDS: dict[str, tuple[str, str, str]] = {
    "serve": ("bot.cli.serve", "serve", "Serve Slack (HTTP at /slack/events, or Socket Mode) plus /healthz, /readyz and /metrics."),
    "demo": ("bot.cli.shell", "demo", "The shell against in-process fakes: embedded SQLite, fake Kubernetes, moto for AWS."),
    "shell": ("bot.cli.shell", "shell", "The text front end on your real config, database and clusters (same code path as Slack)."),
    "validate": ("bot.cli.validate", "validate", "Check the config and every runbook; print each problem as file:line: field: message."),
    "db": ("bot.cli.db", "db", "Database schema: upgrade, show the revision, compare models and migrations."),
    "audit": ("bot.cli.db", "audit", "The audit log: tail, export, verify the hash chain."),
    "digest": ("bot.cli.digest", "digest", "Build the health digest and print it (nothing is posted)."),
    "rbac": (
        "bot.cli.rbac", "rbac", "Print the Role and RoleBinding (or the chart's values) for exactly the Deployments the catalog names."
    ),
    "insights": (
        "bot.cli.insights", "insights",
        "Deploys, change failure rate, time to restore, approval waits and run durations, against the previous window.",
    ),
}  # fmt: skip
"""Subcommand name → (module, attribute, the command's one-line help)."""


class OpsbotGroup(click.Group):
    """Imports a subcommand's module only when it runs; ends every subcommand that meets a bad or unreachable database with one line."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in SUBCOMMANDS:
            return None
        module, attribute, _summary = SUBCOMMANDS[cmd_name]
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The listing of ``--help`` from the table, as click would draw it from the commands themselves."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = [(name, click.Command(name, help=SUBCOMMANDS[name][2]).get_short_help_str(limit)) for name in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as error:
            from bot.cli.fail import fail_on_database, fail_on_settings

            fail_on_settings(error)
            fail_on_database(error)
            raise


@click.group(cls=OpsbotGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="opsbot")
def main() -> None:
    """opsbot: ChatOps for platform teams. Slash commands and approval buttons that run
    YAML runbooks on Kubernetes and AWS, with a hash-chained SQL audit log."""


if __name__ == "__main__":
    main()
