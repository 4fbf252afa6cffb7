"""Socket Mode: envelopes as Slack sends them over the WebSocket reach the same listeners.

No real Slack: the handler is built with an app token and its ``handle`` is called with
``SocketModeRequest`` envelopes, the way the aiohttp client calls it; the answers it would
send back over the socket are recorded. The bot's Web API calls go to the fake as usual.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from bot.messages import ButtonAction
from bot.serve.wiring import OpsbotCore, ServingBot, build_inline_bot
from bot.slack.socket_mode import build_socket_mode_handler
from fakes.slack import FakeSlackApi
from tests.doubles import STATE
from tests.integration.slack_support import (
    CHANNEL,
    catalog_factory,
    click_payload,
    command_form,
    latest_message,
    migrated,
    posted_request,
    slack_settings,
    write_touch_catalog,
)


class RecordingSocketClient:
    """Stands in for the WebSocket: keeps the responses the handler sends back."""

    def __init__(self) -> None:
        self.logger = logging.getLogger("socket-mode-test")
        self.responses: list[SocketModeResponse] = []

    async def send_socket_mode_response(self, response: SocketModeResponse) -> None:
        self.responses.append(response)


@pytest.fixture
def bot(slack: FakeSlackApi, tmp_path: Path, sqlite_url: str) -> Iterator[ServingBot]:
    catalog = write_touch_catalog(tmp_path)
    settings = slack_settings(
        slack,
        database_url=migrated(sqlite_url),
        config_path=tmp_path / "opsbot.yaml",
        runbooks_dir=tmp_path / "runbooks",
        SLACK_SIGNING_SECRET=None,  # Socket Mode needs no signing secret: the connection is authenticated
        SLACK_APP_TOKEN="xapp-1-A0FAKE-1-secret",
    )
    serving = build_inline_bot(settings, core_factory=catalog_factory(catalog))
    serving.slack.check_token()
    yield serving
    assert serving.core is not None
    serving.core.wait_idle(timeout=30)
    serving.core.close()


def core_of(bot: ServingBot) -> OpsbotCore:
    assert bot.core is not None
    return bot.core


def envelope(kind: str, payload: dict[str, Any], envelope_id: str) -> SocketModeRequest:
    return SocketModeRequest(type=kind, envelope_id=envelope_id, payload=payload)


def dispatch(bot: ServingBot, request: SocketModeRequest) -> SocketModeResponse:
    """Run one envelope through the handler on a fresh event loop; return what went back over the socket."""
    client = RecordingSocketClient()

    async def run() -> None:
        handler = build_socket_mode_handler(bot.slack.bolt, "xapp-1-A0FAKE-1-secret")
        try:
            await handler.handle(client, request)  # type: ignore[arg-type]
        finally:
            await handler.client.close()  # type: ignore[no-untyped-call]

    asyncio.run(run())
    [response] = client.responses
    return response


def test_a_slash_command_envelope_is_acked_over_the_socket_and_runs_after_approval(bot: ServingBot, slack: FakeSlackApi) -> None:
    answer = dispatch(bot, envelope("slash_commands", command_form(slack, "U0REQ", CHANNEL, "touch svc v2 in production"), "env-command"))

    assert answer.envelope_id == "env-command"
    assert answer.payload == {"text": "Working on `touch svc v2 in production`…", "response_type": "ephemeral"}
    message = posted_request(core_of(bot), slack, "touch svc")

    click = click_payload(slack, "U0A00", CHANNEL, message, ButtonAction.APPROVE)
    click_answer = dispatch(bot, envelope("interactive", click, "env-click"))

    assert (click_answer.envelope_id, click_answer.payload) == ("env-click", None)
    slack.wait_for(lambda: "succeeded" in latest_message(slack, containing="touch svc").text or None, timeout=10)
    assert STATE.runs == 1


def test_the_handler_refuses_a_bot_token_in_place_of_an_app_token(bot: ServingBot) -> None:
    with pytest.raises(ValueError, match="app-level token"):
        build_socket_mode_handler(bot.slack.bolt, "xoxb-not-an-app-token")
