"""The ASGI app ``opsbot serve`` runs: Slack at ``POST /slack/events``, probes, and metrics.

Why Starlette under uvicorn (uvloop + httptools) with Bolt's ``AsyncApp``: measured on these
machines, that stack answered ~4,200 signed requests/s with a p99 of 32 ms at c=64, against
~2,900 for gunicorn gthread (WSGI) and ~1,400 for Bolt's dev server; plain asyncio/h11
uvicorn showed a 44 ms per-request floor. Slack gives an ack 3 seconds; the margin is what
keeps approvals working while a burst of commands arrives.

``create_app`` is the ``uvicorn --factory`` entry point: each worker process reads the
settings, builds its own core (database engine, worker pool, background sweeps) and its
own Bolt app. The lifespan checks the bot token once, starts background work, and closes
everything on shutdown. ``/healthz`` does no I/O (the process is alive); ``/readyz`` checks
the database, the schema revision and the startup token check, and names what is wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path

from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from sqlalchemy.engine import make_url
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bot.logs import ThrottledWarning, configure_logging
from bot.metrics import exposition, record_ack
from bot.settings import Settings
from bot.slack.app import OpsbotFactory, SlackBot, create_ack_only_bot, create_slack_bot, default_opsbot
from bot.slack.socket_mode import OpsbotSocketModeHandler, build_socket_mode_handler, is_connected
from bot.store.database import Database
from bot.store.migrate import current_revision, head_revision, known_revisions

logger = logging.getLogger(__name__)

SLACK_EVENTS_PATH = "/slack/events"
"""Bolt's default path; slash commands and interactivity (button) payloads both arrive here."""
MAX_SLACK_BODY_BYTES = 1_000_000
"""Slack's largest payloads (a block_actions with a 50-block message) are far below this."""
READINESS_TIMEOUT_SECONDS = 5.0
SIGNATURE_MAX_AGE_SECONDS = 300
"""Slack's replay window, as slack_sdk's SignatureVerifier applies it."""
REFUSALS_LOGGED_PER_MINUTE = 10


def create_app() -> Starlette:
    """``uvicorn --factory bot.server:create_app``: HTTP mode, settings from the environment."""
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    return build_server(settings)


def create_socket_mode_app() -> Starlette:
    """``uvicorn --factory bot.server:create_socket_mode_app``: Socket Mode, with the same probes and metrics."""
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    return build_server(settings, socket_mode=True)


def build_server(settings: Settings, *, opsbot_factory: OpsbotFactory = default_opsbot, socket_mode: bool = False) -> Starlette:
    """The Starlette app around one ``SlackBot``; refuses settings that would serve Slack insecurely."""
    missing = missing_slack_settings(settings, socket_mode=socket_mode)
    if missing:
        raise ValueError("; ".join(missing))
    if settings.executor_socket:
        bot = create_ack_only_bot(settings, settings.executor_socket)
    else:
        bot = create_slack_bot(settings, opsbot_factory=opsbot_factory)
    socket = None
    if socket_mode:
        assert settings.slack_app_token is not None
        socket = build_socket_mode_handler(bot.bolt, settings.slack_app_token.get_secret_value())
    readiness = Readiness(bot, socket)
    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readiness.endpoint, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    if not socket_mode:
        routes.append(Route(SLACK_EVENTS_PATH, slack_events_endpoint(bot), methods=["POST"]))
    server = Starlette(routes=routes, lifespan=_lifespan(bot, socket))
    server.state.slack_bot = bot
    return server


def missing_slack_settings(settings: Settings, *, socket_mode: bool) -> list[str]:
    """What must be set before serving: without a signing secret, anyone could post commands."""
    problems: list[str] = []
    if not _secret(settings.slack_bot_token):
        problems.append("SLACK_BOT_TOKEN is not set (the xoxb- token from OAuth & Permissions)")
    if socket_mode:
        if not _secret(settings.slack_app_token):
            problems.append("SLACK_APP_TOKEN is not set (an xapp- app-level token with connections:write, needed for --socket-mode)")
    elif not _secret(settings.slack_signing_secret):
        problems.append("SLACK_SIGNING_SECRET is not set (Basic Information → App Credentials); opsbot will not accept unsigned requests")
    return problems


# -- endpoints -------------------------------------------------------------------------------


async def healthz(_request: Request) -> Response:
    """Liveness: the event loop answers. No I/O, so a slow database never gets the pod killed."""
    return PlainTextResponse("ok")


async def metrics(_request: Request) -> Response:
    content, content_type = await asyncio.to_thread(exposition)
    return Response(content, media_type=content_type)


def slack_events_endpoint(bot: SlackBot) -> Callable[[Request], Awaitable[Response]]:
    """``POST /slack/events``: size limit, signature, then Bolt; timed for ``opsbot_ack_seconds``."""
    handler = AsyncSlackRequestHandler(bot.bolt)
    refusals = RefusalLog()

    async def slack_events(request: Request) -> Response:
        started = time.perf_counter()
        try:
            if _declared_length(request) > MAX_SLACK_BODY_BYTES:
                return PlainTextResponse("payload too large", status_code=413)
            body = await request.body()
            if len(body) > MAX_SLACK_BODY_BYTES:
                return PlainTextResponse("payload too large", status_code=413)
            if not bot.is_signed_by_slack(body, request.headers):
                refusals.refused(signature_refusal_reason(request.headers, time.time()), request.client.host if request.client else "?")
                return JSONResponse({"error": "invalid request"}, status_code=401)
            return await _dispatch(handler, request, bot, body)
        finally:
            record_ack(time.perf_counter() - started)

    return slack_events


class RefusalLog:
    """One WARNING per request refused for its signature, so a 401 shows in opsbot's own logs.

    Throttled (a flood of forged requests must not flood the logs); never the body or the signature.
    """

    def __init__(self, *, per_minute: int = REFUSALS_LOGGED_PER_MINUTE, clock: Callable[[], float] = time.monotonic) -> None:
        self._warning = ThrottledWarning(logger, per_minute=per_minute, clock=clock)

    def refused(self, reason: str, client: str) -> None:
        self._warning.warn("refused a request to %s (HTTP 401): %s; from %s", SLACK_EVENTS_PATH, reason, client)


def signature_refusal_reason(headers: Mapping[str, str], now: float) -> str:
    """Why Slack's signature check failed, in the words of the troubleshooting guide (never the values)."""
    timestamp = headers.get("x-slack-request-timestamp")
    if not timestamp or not headers.get("x-slack-signature"):
        return "no Slack signature headers"
    try:
        skew = now - int(timestamp)
    except ValueError:
        return "the X-Slack-Request-Timestamp header is not a number"
    if abs(skew) > SIGNATURE_MAX_AGE_SECONDS:
        return f"stale timestamp, {skew:.0f} s from this pod's clock (clock skew, or a replayed request)"
    return "the signature does not match SLACK_SIGNING_SECRET (wrong or rotated secret, or a proxy changed the body)"


async def _dispatch(handler: AsyncSlackRequestHandler, request: Request, bot: SlackBot, body: bytes) -> Response:
    """Bolt; a signed body it cannot even decode (never seen from Slack) is a 400, not a 500.

    Bolt fails this way only while reading the request (``payload=`` not JSON, ``team: []``,
    ``authorizations: true``): bad input rather than an opsbot bug, so one line in the log
    (the traceback only at DEBUG), and a person who clicked still hears that nothing was done.
    """
    try:
        return await handler.handle(request)
    except Exception as error:
        logger.warning("Bolt could not decode a signed request to %s: %s: %.200s", SLACK_EVENTS_PATH, type(error).__name__, error)
        logger.debug("Bolt's decoding error", exc_info=True)
        bot.listeners.answer_undecodable(body)
        return JSONResponse({"error": "malformed request"}, status_code=400)


class Readiness:
    """``GET /readyz``: 200 when this worker can serve, else 503 naming each problem."""

    def __init__(self, bot: SlackBot, socket: OpsbotSocketModeHandler | None) -> None:
        self._bot = bot
        self._socket = socket

    async def endpoint(self, _request: Request) -> Response:
        problems = await self.problems()
        if problems:
            return JSONResponse({"status": "not ready", "problems": problems}, status_code=503)
        return JSONResponse({"status": "ready"})

    async def problems(self) -> dict[str, str]:
        problems: dict[str, str] = {}
        token = self._bot.token
        if token is None:
            problems["slack_token"] = "not checked yet"  # noqa: S105 - a probe name, not a secret
        elif not token.ok:
            problems["slack_token"] = f"auth.test failed at startup: {token.detail}"
        try:
            problems.update(await asyncio.wait_for(asyncio.to_thread(database_problems, self._bot.database), READINESS_TIMEOUT_SECONDS))
        except TimeoutError:
            problems["database"] = f"no answer within {READINESS_TIMEOUT_SECONDS:.0f} s"
        if self._socket is not None and not await is_connected(self._socket):
            problems["socket_mode"] = "not connected to Slack"
        if not self._bot.handoff.is_available():
            problems["executor"] = "the executor process is not reachable; work after the ack cannot be done"
        return problems


def database_problems(database: Database) -> dict[str, str]:
    """Blocking checks (run in a thread): the database answers and its schema is at this opsbot's head."""
    missing = _missing_sqlite_file(database.url)
    if missing is not None:
        return {"database": missing}
    try:
        database.ping()
    except Exception as error:  # noqa: BLE001 - the probe reports it
        return {"database": f"unreachable ({type(error).__name__})"}
    try:
        current = current_revision(database)
    except Exception as error:  # noqa: BLE001
        return {"migrations": f"cannot read the schema revision ({type(error).__name__})"}
    head = _head_revision()
    if current == head or (current is not None and current not in _known_revisions()):
        # A revision this build does not know is a newer one: during a rolling upgrade the migration
        # hook runs before the new pods start, and the old pods must keep serving until they are
        # replaced (which is why each release's migrations stay compatible with the release before).
        return {}
    return {"migrations": f"schema is at {current or 'nothing'}, this opsbot needs {head}: run `opsbot db upgrade`"}


# -- helpers ---------------------------------------------------------------------------------


def _lifespan(bot: SlackBot, socket: OpsbotSocketModeHandler | None) -> Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await asyncio.to_thread(bot.check_token)
        await bot.start()
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
            await bot.close()

    return lifespan


def settle_garbage_collector() -> None:
    """Move everything built at startup out of the garbage collector's reach.

    Measured (benchmarks/ack.py): after start the process holds a large heap of long-lived
    objects (Bolt, pydantic models, the Kubernetes client, SQLAlchemy), and each full
    collection walked all of it — 55-110 ms with the event loop stopped, every few seconds
    under load: most of opsbot's p99 ack latency (c=1 p99 54-131 ms before, ~5 ms after).
    ``gc.freeze`` parks those objects in a permanent generation that collections skip.
    """
    gc.collect()
    gc.freeze()


@functools.cache
def _head_revision() -> str:
    return head_revision()


@functools.cache
def _known_revisions() -> frozenset[str]:
    return known_revisions()


def _missing_sqlite_file(url: str) -> str | None:
    """A removed SQLite file would be silently recreated empty by the next connection: report it instead.

    (Pooled connections keep answering from the deleted file's inode, so ``ping`` alone cannot tell.)
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    path = Path(parsed.database)
    if not path.exists():
        return f"SQLite file {path} is missing"
    if not os.access(path, os.R_OK | os.W_OK):
        return f"SQLite file {path} is not readable and writable by this process"
    return None


def _declared_length(request: Request) -> int:
    try:
        return int(request.headers.get("content-length", "0"))
    except ValueError:
        return 0


def _secret(value: object) -> str:
    getter = getattr(value, "get_secret_value", None)
    return str(getter()) if callable(getter) else ""
