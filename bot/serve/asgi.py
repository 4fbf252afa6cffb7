"""The ASGI app ``opsbot serve`` runs: Slack at ``POST /slack/events``, the inbound API at ``/api/v1``, probes, and metrics.

Why Starlette under uvicorn (uvloop + httptools) with Bolt's ``AsyncApp``: of the stacks
measured on these machines it answered the most signed requests per second with the lowest
p99 (see docs/benchmarks.md). Slack gives an ack 3 seconds; the margin is what keeps approvals
working while a burst of commands arrives.

``create_app`` is the ``uvicorn --factory`` entry point: each worker process reads the
settings and builds its own serving bot (``bot.serve.wiring``). The lifespan checks the bot
token once, starts background work, and closes everything on shutdown. ``/healthz`` does no
I/O (the process is alive); ``/readyz`` names what is wrong (``bot.serve.readiness``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from bot.api.app import PREFIX as API_PREFIX
from bot.logs import ThrottledWarning, configure_logging
from bot.metrics import exposition, record_ack
from bot.serve.bodies import BodyAbandoned, BodyRefused, read_limited_body
from bot.serve.process import settle_garbage_collector
from bot.serve.readiness import Readiness, missing_slack_settings
from bot.serve.wiring import CoreFactory, ServingBot, build_ack_only_bot, build_inline_bot, default_core
from bot.settings import Settings
from bot.slack.socket_mode import OpsbotSocketModeHandler, build_socket_mode_handler

logger = logging.getLogger(__name__)

SLACK_EVENTS_PATH = "/slack/events"
"""Bolt's default path; slash commands and interactivity (button) payloads both arrive here."""
MAX_SLACK_BODY_BYTES = 1_000_000
"""Slack's largest payloads (a block_actions with a 50-block message) are far below this."""


def create_app() -> Starlette:
    """``uvicorn --factory bot.serve.asgi:create_app``: HTTP mode, settings from the environment."""
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    return build_server(settings)


def create_socket_mode_app() -> Starlette:
    """``uvicorn --factory bot.serve.asgi:create_socket_mode_app``: Socket Mode, with the same probes and metrics."""
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    return build_server(settings, socket_mode=True)


def build_server(settings: Settings, *, core_factory: CoreFactory = default_core, socket_mode: bool = False) -> Starlette:
    """The Starlette app around one serving bot; refuses settings that would serve Slack insecurely."""
    missing = missing_slack_settings(settings, socket_mode=socket_mode)
    if missing:
        raise ValueError("; ".join(missing))
    if settings.executor_socket:
        serving = build_ack_only_bot(settings, settings.executor_socket)
    else:
        serving = build_inline_bot(settings, core_factory=core_factory)
    socket = None
    if socket_mode:
        assert settings.slack_app_token is not None
        socket = build_socket_mode_handler(serving.slack.bolt, settings.slack_app_token.get_secret_value())
    routes: list[BaseRoute] = []
    if not socket_mode:  # first: Starlette tries the routes in order, and this one takes nearly every request
        routes.append(
            Route(SLACK_EVENTS_PATH, slack_events_endpoint(serving, body_timeout=settings.body_timeout_seconds), methods=["POST"])
        )
    routes += [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", Readiness(serving, socket).endpoint, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    if serving.api is not None:
        routes.append(Mount(API_PREFIX, app=serving.api.app()))  # the inbound API (docs/api.md), in either mode
    server = Starlette(routes=routes, lifespan=_lifespan(serving, socket))
    server.state.serving = serving
    return server


async def healthz(_request: Request) -> Response:
    """Liveness: the event loop answers. No I/O, so a slow database never gets the pod killed."""
    return PlainTextResponse("ok")


async def metrics(_request: Request) -> Response:
    content, content_type = await asyncio.to_thread(exposition)
    return Response(content, media_type=content_type)


def slack_events_endpoint(serving: ServingBot, *, body_timeout: float) -> Callable[[Request], Awaitable[Response]]:
    """``POST /slack/events``: the body read as a stream within its limits, then the Slack front door; timed for ``opsbot_ack_seconds``."""

    refusals = ThrottledWarning(logger)  # anyone can send these: visible in the log, never a flood of lines
    disconnects = ThrottledWarning(logger, per_minute=1)  # anyone can hang up mid-body: one line a minute, never a traceback each

    async def slack_events(request: Request) -> Response:
        started = time.perf_counter()
        try:
            try:
                body = await read_limited_body(request, max_bytes=MAX_SLACK_BODY_BYTES, timeout=body_timeout)
            except BodyAbandoned as gone:
                disconnects.warn("a client disconnected before sending the whole body (%s); nothing was done", gone.reason)
                return PlainTextResponse("client disconnected", status_code=400)
            except BodyRefused as refused:
                return _refuse_body(refused, request, refusals)
            answer = await serving.slack.answer(body, request.headers, request.client.host if request.client else "?")
            return Response(answer.body, status_code=answer.status, media_type=answer.content_type)
        finally:
            record_ack(time.perf_counter() - started)

    return slack_events


def _refuse_body(refused: BodyRefused, request: Request, refusals: ThrottledWarning) -> Response:
    """413/408 with ``Connection: close``: uvicorn then closes the socket instead of reading (and discarding) the rest."""
    client = request.client.host if request.client else "?"
    refusals.warn("refused a request body from %s: %s", client, refused.reason)
    text = {413: "payload too large", 408: "request body too slow"}.get(refused.status, "bad request")
    return PlainTextResponse(text, status_code=refused.status, headers={"Connection": "close"})


def _lifespan(
    serving: ServingBot, socket: OpsbotSocketModeHandler | None
) -> Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await asyncio.to_thread(serving.slack.check_token)
        await serving.start()
        if socket is not None:
            await socket.connect_async()  # type: ignore[no-untyped-call]
        settle_garbage_collector()
        logger.info("opsbot is serving (%s)", "Socket Mode" if socket is not None else f"HTTP at {SLACK_EVENTS_PATH}")
        try:
            yield
        finally:
            if socket is not None:
                await socket.close_async()  # type: ignore[no-untyped-call]
            # Inline, this waits for running work; a run cut short by a hard kill is recovered by another replica's sweep.
            await serving.close()

    return lifespan
