"""Socket Mode: the same Bolt app and listeners, fed over a WebSocket instead of HTTP.

For workspaces that cannot expose an HTTPS endpoint. Slack needs an app-level token
(``xapp-…``, scope ``connections:write``); ``apps.connections.open`` goes to the same
``SLACK_API_URL`` as every other call. Requests arrive already authenticated by the
connection, so Bolt skips signature checks for them; the listeners are unchanged.
"""

from __future__ import annotations

import logging
import time

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest

from bot.metrics import record_ack

logger = logging.getLogger(__name__)


class OpsbotSocketModeHandler(AsyncSocketModeHandler):
    """Bolt's aiohttp Socket Mode handler that also times each answer (``opsbot_ack_seconds``)."""

    async def handle(self, client: SocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]  # as Bolt declares it
        started = time.perf_counter()
        try:
            await super().handle(client, req)
        finally:
            record_ack(time.perf_counter() - started)


def build_socket_mode_handler(app: AsyncApp, app_token: str) -> OpsbotSocketModeHandler:
    """The handler for ``opsbot serve --socket-mode``; ``connect_async`` / ``close_async`` drive it."""
    if not app_token.startswith("xapp-"):
        raise ValueError("SLACK_APP_TOKEN must be an app-level token (xapp-…) with the connections:write scope")
    return OpsbotSocketModeHandler(app, app_token=app_token, logger=logger)


async def is_connected(handler: AsyncSocketModeHandler) -> bool:
    """Whether the WebSocket to Slack is up (for ``/readyz``)."""
    try:
        return bool(await handler.client.is_connected())
    except Exception:
        logger.warning("could not ask the Socket Mode client whether it is connected", exc_info=True)
        return False
