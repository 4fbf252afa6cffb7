"""The baseline for benchmarks/ack.py: a bare Bolt app whose /ops (and form, options, shortcut) listeners only ack.

Served exactly like opsbot (Starlette + Bolt's AsyncSlackRequestHandler under uvicorn with
uvloop and httptools, ``process_before_response=True``), so the difference between the two
is what opsbot itself adds to the ack path.
"""

from __future__ import annotations

import os
import re
from typing import Any

from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def _authorize(**_kwargs: Any) -> AuthorizeResult:
    return AuthorizeResult(enterprise_id=None, team_id="T0FAKE", bot_user_id="U0BOT", bot_id="B0BOT", bot_token="xoxb-bench")


def create_app() -> Starlette:
    bolt = AsyncApp(signing_secret=os.environ["SLACK_SIGNING_SECRET"], authorize=_authorize, process_before_response=True)

    async def ops(ack: Any) -> None:
        await ack(text="ok", response_type="ephemeral")

    async def acked(ack: Any) -> None:
        await ack()

    async def options(ack: Any) -> None:
        await ack(options=[])

    bolt.command("/ops")(ops)
    bolt.view("opsbot_form")(acked)
    bolt.options(re.compile("^opsbot_form:"))(options)
    bolt.shortcut("run_runbook")(acked)
    handler = AsyncSlackRequestHandler(bolt)

    async def events(request: Request) -> Response:
        return await handler.handle(request)

    return Starlette(routes=[Route("/slack/events", events, methods=["POST"])])
