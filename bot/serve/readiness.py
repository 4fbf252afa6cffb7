"""Is this process fit to serve? ``/readyz``, and the checks ``opsbot serve`` makes before it starts anything."""

from __future__ import annotations

import asyncio
import functools

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bot.serve.wiring import ServingBot
from bot.settings import Settings
from bot.slack.socket_mode import OpsbotSocketModeHandler, is_connected
from bot.store.database import Database
from bot.store.migrate import current_revision, head_revision, known_revisions

READINESS_TIMEOUT_SECONDS = 5.0


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


class Readiness:
    """``GET /readyz``: 200 when this worker can serve, else 503 naming each problem."""

    def __init__(self, serving: ServingBot, socket: OpsbotSocketModeHandler | None) -> None:
        self._serving = serving
        self._socket = socket

    async def endpoint(self, _request: Request) -> Response:
        problems = await self.problems()
        if problems:
            return JSONResponse({"status": "not ready", "problems": problems}, status_code=503)
        return JSONResponse({"status": "ready"})

    async def problems(self) -> dict[str, str]:
        problems: dict[str, str] = {}
        token = self._serving.slack.token
        if token is None:
            problems["slack_token"] = "not checked yet"  # noqa: S105 - a probe name, not a secret
        elif not token.ok:
            problems["slack_token"] = f"auth.test failed at startup: {token.detail}"
        try:
            problems.update(await asyncio.wait_for(asyncio.to_thread(database_problems, self._serving.database), READINESS_TIMEOUT_SECONDS))
        except TimeoutError:
            problems["database"] = f"no answer within {READINESS_TIMEOUT_SECONDS:.0f} s"
        if self._socket is not None and not await is_connected(self._socket):
            problems["socket_mode"] = "not connected to Slack"
        if not self._serving.handoff.is_available():
            problems["executor"] = "the executor process is not reachable; work after the ack cannot be done"
        return problems


def database_problems(database: Database) -> dict[str, str]:
    """Blocking checks (run in a thread): the database answers and its schema is at this opsbot's head."""
    missing = database.missing_file()
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


@functools.cache
def _head_revision() -> str:
    return head_revision()


@functools.cache
def _known_revisions() -> frozenset[str]:
    return known_revisions()


def _secret(value: object) -> str:
    getter = getattr(value, "get_secret_value", None)
    return str(getter()) if callable(getter) else ""
