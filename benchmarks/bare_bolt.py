"""The baselines for benchmarks/ack.py: bare Bolt apps with one /ops listener (and form, options, shortcut listeners that only ack).

``create_app`` only acks: the difference from opsbot's ack-only server is what opsbot adds to
the ack path. ``create_replying_app`` does the job opsbot does for ``help``: it acks with the
same "Working on" text, then sends the same reply (the JSON body in ``BARE_REPLY_FILE``, taken
from opsbot's own reply) through the command's ``response_url``, the idiomatic Bolt way: a lazy
listener, which AsyncApp runs as an asyncio task after the ack, posting with ``respond``.

Both are served exactly like opsbot (Starlette + Bolt's AsyncSlackRequestHandler under uvicorn
with uvloop and httptools, ``process_before_response=True``).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
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

    bolt.command("/ops")(ops)
    _ack_forms(bolt)
    return _serve(bolt)


def _ack_forms(bolt: AsyncApp) -> None:
    """Form submissions, version options and the shortcut: acked and nothing more, in both baselines."""

    async def acked(ack: Any) -> None:
        await ack()

    async def options(ack: Any) -> None:
        await ack(options=[])

    bolt.view("opsbot_form")(acked)
    bolt.options(re.compile("^opsbot_form:"))(options)
    bolt.shortcut("run_runbook")(acked)


def create_replying_app() -> Starlette:
    bolt = AsyncApp(signing_secret=os.environ["SLACK_SIGNING_SECRET"], authorize=_authorize, process_before_response=True)
    sent: dict[str, Any] = json.loads(Path(os.environ["BARE_REPLY_FILE"]).read_text())
    reply = {key: value for key, value in sent.items() if key in _RESPOND_FIELDS}

    async def ack_working(ack: Any, command: dict[str, Any]) -> None:
        await ack(text=f"Working on `{command['text']}`…", response_type="ephemeral")

    async def send_reply(respond: Any) -> None:
        await respond(**reply)

    bolt.command("/ops")(ack=ack_working, lazy=[send_reply])
    _ack_forms(bolt)
    return _serve(bolt)


_RESPOND_FIELDS = {"text", "blocks", "attachments", "response_type", "replace_original", "delete_original", "thread_ts", "metadata"}


def _serve(bolt: AsyncApp) -> Starlette:
    handler = AsyncSlackRequestHandler(bolt)

    async def events(request: Request) -> Response:
        return await handler.handle(request)

    return Starlette(routes=[Route("/slack/events", events, methods=["POST"])])
