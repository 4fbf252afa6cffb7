"""The Slack front end: the Bolt ``AsyncApp``, its listeners, and the Web API clients behind them.

Choices that keep the 3-second ack honest:

- ``process_before_response=True``: Bolt answers Slack when the listener returns. Our
  listeners do no I/O, so that is sub-millisecond; Bolt's default instead polls for a
  lazy ack (~11 ms per request measured here).
- ``authorize=`` instead of ``token=``: with a token, Bolt calls ``auth.test`` on the first
  request of every process, i.e. Web API I/O before an ack. We call ``auth.test`` once at
  startup in a thread (``SlackBot.check_token``) and authorize every request from memory.
- Two clients: Bolt's ``AsyncWebClient`` is only there because Bolt wants one; the work
  after the ack uses one sync ``WebClient`` with 429 retries in worker threads.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from bot.app import OpsbotApp, build_app
from bot.catalog import load_catalog
from bot.groups import ExternalGroupResolver
from bot.notifier import Notifier
from bot.settings import Settings
from bot.slack.executor import SpreadHandoff
from bot.slack.jobs import Handoff, JobRunner, LocalHandoff
from bot.slack.listeners import ANY_ACTION, OPS_COMMAND, BlockActionsGuard, SlackListeners, WorkspaceGuard
from bot.slack.notifier import SlackNotifier, api_base_url, make_web_client
from bot.slack.usergroups import SlackUserGroups
from bot.store.database import Database
from commands.parser import CommandRequest, parse_command

logger = logging.getLogger(__name__)

OpsbotFactory = Callable[[Settings, Notifier, ExternalGroupResolver], OpsbotApp]
"""Builds the core around the Slack notifier and group resolver (tests pass one with their own catalog)."""


def default_opsbot(settings: Settings, notifier: Notifier, groups: ExternalGroupResolver) -> OpsbotApp:
    return build_app(settings, notifier=notifier, external_groups=groups)


@dataclass(frozen=True)
class TokenCheck:
    """What ``auth.test`` said about the bot token at startup."""

    ok: bool
    detail: str
    team_id: str | None = None
    bot_user_id: str | None = None
    bot_id: str | None = None
    enterprise_id: str | None = None


class SlackBot:
    """The Slack front door: the Bolt app for incoming requests, and where their work goes after the ack.

    Two shapes. Inline (tests, ``build_server`` without an executor): the core lives in this
    process (``opsbot``) and jobs go to its worker pool. Ack-only (``opsbot serve``): this
    process only parses and acks; jobs go over a Unix socket to the executor process, which
    owns the core (see ``bot.slack.executor``).
    """

    def __init__(
        self,
        *,
        settings: Settings,
        web: WebClient,
        parse: Callable[[str], CommandRequest],
        commands: Collection[str],
        handoff: Handoff,
        database: Database,
        opsbot: OpsbotApp | None = None,
    ) -> None:
        self.settings = settings
        self.web = web
        self.handoff = handoff
        self.database = database
        self._opsbot = opsbot
        self.token: TokenCheck | None = None
        self.listeners = SlackListeners(parse=parse, commands=commands, handoff=handoff)
        self.bolt = build_bolt_app(settings, self.listeners, self.authorization)
        secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else ""
        self._signatures = SignatureVerifier(secret) if secret else None

    @property
    def opsbot(self) -> OpsbotApp:
        """The core, when it runs in this process (inline mode)."""
        if self._opsbot is None:
            raise RuntimeError("this process only acks; the core runs in the executor process")
        return self._opsbot

    async def start(self) -> None:
        """On the serving loop: start the core's background work (in a thread), or connect to the executors."""
        if self._opsbot is not None:
            await asyncio.to_thread(self._opsbot.start_background)
        if isinstance(self.handoff, SpreadHandoff):
            await self.handoff.connect()

    async def close(self) -> None:
        """On the serving loop: stop background work (waiting for running runs), or hand the last jobs to the executors."""
        if isinstance(self.handoff, SpreadHandoff):
            await self.handoff.close()
        if self._opsbot is not None:
            await asyncio.to_thread(self._opsbot.close)
        else:
            await asyncio.to_thread(self.database.dispose)

    def is_signed_by_slack(self, body: bytes, headers: Mapping[str, str]) -> bool:
        """Slack's request signature, checked before Bolt sees the body.

        Bolt checks it too, but only after decoding the body: an unsigned request with a body
        that is not valid JSON would otherwise become an exception and a traceback, for anyone.
        """
        if self._signatures is None:
            return False
        try:
            return self._signatures.is_valid_request(body, headers)
        except ValueError:  # not UTF-8: not something Slack sent
            return False

    def check_token(self) -> TokenCheck:
        """One ``auth.test`` (blocking: run it in a thread at startup); the result feeds ``/readyz``."""
        try:
            response = self.web.auth_test()
        except SlackApiError as error:
            self.token = TokenCheck(ok=False, detail=str(error.response.get("error") or f"http_{error.response.status_code}"))
        except Exception as error:  # noqa: BLE001 - reported by /readyz, not fatal: Slack may be back in a minute
            self.token = TokenCheck(ok=False, detail=f"Slack unreachable ({type(error).__name__})")
        else:
            self.token = TokenCheck(
                ok=True,
                detail=f"team {response.get('team_id')} as {response.get('user_id')}",
                team_id=_str_or_none(response.get("team_id")),
                bot_user_id=_str_or_none(response.get("user_id")),
                bot_id=_str_or_none(response.get("bot_id")),
                enterprise_id=_str_or_none(response.get("enterprise_id")),
            )
        if self.token.ok:
            self.listeners.set_home_workspace(team_id=self.token.team_id, enterprise_id=self.token.enterprise_id)
        log = logger.info if self.token.ok else logger.error
        log("Slack token check: %s", self.token.detail)
        return self.token

    def authorization(self, enterprise_id: str | None, team_id: str | None, user_id: str | None) -> AuthorizeResult:
        """Bolt's per-request authorization, from memory: never a Web API call on the ack path."""
        token = self.settings.slack_bot_token.get_secret_value() if self.settings.slack_bot_token else None
        known = self.token if self.token is not None and self.token.ok else None
        return AuthorizeResult(
            enterprise_id=enterprise_id,
            team_id=team_id,
            bot_token=token,
            bot_user_id=known.bot_user_id if known else None,
            bot_id=known.bot_id if known else None,
            user_id=user_id,
        )


def create_slack_bot(settings: Settings, *, opsbot_factory: OpsbotFactory = default_opsbot) -> SlackBot:
    """Inline: the core in this process, jobs to its worker pool (tests; ``build_server`` without an executor)."""
    web = make_web_client(settings)
    opsbot = opsbot_factory(settings, SlackNotifier(web), SlackUserGroups(web))
    handoff = LocalHandoff(opsbot.runner, JobRunner(opsbot.operations, web))
    return SlackBot(
        settings=settings,
        web=web,
        parse=opsbot.operations.parse,
        commands=opsbot.catalog.commands,
        handoff=handoff,
        database=opsbot.database,
        opsbot=opsbot,
    )


def create_ack_only_bot(settings: Settings, executor_socket: str) -> SlackBot:
    """Ack-only: parse with the catalog, hand every job to the executor processes (comma-separated sockets)."""
    catalog = load_catalog(settings.config_path, settings.runbooks_dir)

    def parse(text: str) -> CommandRequest:
        return parse_command(text, catalog.commands, catalog.config)

    return SlackBot(
        settings=settings,
        web=make_web_client(settings),
        parse=parse,
        commands=catalog.commands,
        handoff=SpreadHandoff(executor_socket.split(",")),
        database=Database(settings.database_url.get_secret_value()),
    )


class _ExpectedTokenWarning(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN from the environment by itself, then warns that our ``client`` wins.

    It is meant to (the token reaches Bolt through ``authorize``); the warning would only alarm operators.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != warning_client_prioritized_and_token_skipped()


def build_bolt_app(
    settings: Settings, listeners: SlackListeners, authorization: Callable[[str | None, str | None, str | None], AuthorizeResult]
) -> AsyncApp:
    """The Bolt app, with Bolt's own token check and signature check off.

    The signature is verified once, before Bolt even decodes the body (``SlackBot.is_signed_by_slack``,
    called by ``bot.server`` for every request to /slack/events; Socket Mode requests come over
    an authenticated WebSocket and carry none). Bolt verifying it again cost a second HMAC and
    its middleware on every ack (measured in benchmarks/ack.py).
    """

    # Bolt passes arguments by parameter name, so this must be a plain function, not a bound method.
    async def authorize(enterprise_id: str | None, team_id: str | None, user_id: str | None) -> AuthorizeResult:
        return authorization(enterprise_id, team_id, user_id)

    bolt_logger = logging.getLogger("slack_bolt.AsyncApp")
    if not any(isinstance(existing, _ExpectedTokenWarning) for existing in bolt_logger.filters):
        bolt_logger.addFilter(_ExpectedTokenWarning())
    app = AsyncApp(
        name="opsbot",
        signing_secret=settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else "",
        client=AsyncWebClient(base_url=api_base_url(settings.slack_api_url)),
        authorize=authorize,
        process_before_response=True,
        request_verification_enabled=False,  # verified before Bolt, see the docstring
        raise_error_for_unhandled_request=False,
    )
    configure(app, listeners)
    return app


def configure(app: AsyncApp, listeners: SlackListeners) -> None:
    """Every middleware and listener opsbot registers, in one place.

    Bolt injects arguments by parameter name and cannot call bound methods, hence these
    one-line functions in front of ``SlackListeners``.
    """

    async def ops_command(ack: AsyncAck, body: dict[str, Any], request: AsyncBoltRequest) -> None:
        await listeners.on_command(ack, body, request)

    async def button_clicked(ack: AsyncAck, body: dict[str, Any], request: AsyncBoltRequest) -> None:
        await listeners.on_block_action(ack, body, request)

    async def listener_failed(error: Exception, body: dict[str, Any]) -> None:
        await listeners.on_error(error, body)

    app.middleware(WorkspaceGuard(listeners))
    app.middleware(BlockActionsGuard(listeners))
    app.command(OPS_COMMAND)(ops_command)
    app.block_action(ANY_ACTION)(button_clicked)
    app.error(listener_failed)


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
