"""``opsbot serve``: the Slack app, its executors and its probes (the process model is ``bot.serve.supervisor``)."""

from __future__ import annotations

import click

from bot.logs import configure_logging
from bot.settings import Settings


@click.command()
@click.option(
    "--socket-mode", is_flag=True, help="Connect to Slack over a WebSocket (needs SLACK_APP_TOKEN) instead of serving /slack/events."
)
@click.option("--host", default=None, help="Interface to listen on [env OPSBOT_HOST, default 0.0.0.0].")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port [env OPSBOT_PORT, default 3000].")
@click.option("--workers", type=click.IntRange(1, 64), default=None, help="HTTP worker processes [env OPSBOT_WORKERS, default 1].")
def serve(socket_mode: bool, host: str | None, port: int | None, workers: int | None) -> None:
    """Serve Slack (HTTP at /slack/events, or Socket Mode) plus /healthz, /readyz and /metrics.

    Runs uvicorn with uvloop and httptools, access log off. Refuses to start when Slack
    credentials are missing, the config is invalid or the database schema is behind.
    """
    from bot.serve import supervisor

    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    supervisor.serve(
        settings, socket_mode=socket_mode, host=host or settings.host, port=port or settings.port, workers=workers or settings.workers
    )
