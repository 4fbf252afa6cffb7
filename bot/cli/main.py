"""The ``opsbot`` command line: serve, demo, shell, validate, db, audit, digest, insights.

Each subcommand is a thin wrapper in its own module: it reads settings once, builds what it
needs (importing only that, so ``opsbot --help`` stays fast), and turns ``OpsbotError`` into a
message on stderr and a non-zero exit (``bot.cli.fail``), never a traceback.
"""

from __future__ import annotations

from typing import Any

import click

from bot.cli.db import audit, db
from bot.cli.digest import digest
from bot.cli.insights import insights
from bot.cli.rbac import rbac
from bot.cli.serve import serve
from bot.cli.shell import demo, shell
from bot.cli.validate import validate


class OpsbotGroup(click.Group):
    """Ends every subcommand that meets a bad or unreachable database with one line, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as error:
            from bot.cli.fail import fail_on_database

            fail_on_database(error)
            raise


@click.group(cls=OpsbotGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="opsbot")
def main() -> None:
    """opsbot: ChatOps for platform teams. Slash commands and approval buttons that run
    YAML runbooks on Kubernetes and AWS, with a hash-chained SQL audit log."""


for command in (serve, demo, shell, validate, db, audit, digest, rbac, insights):
    main.add_command(command)


if __name__ == "__main__":
    main()
