"""The Slack front end: the Bolt ``AsyncApp``, its listeners, the signature check before it, and the token check.

Choices that keep the 3-second ack honest:

- ``process_before_response=True``: Bolt answers Slack when the listener returns. Our
  listeners do no I/O, so that is sub-millisecond; Bolt's default instead polls for a
  lazy ack (a per-request floor; see docs/benchmarks.md).
- ``authorize=`` instead of ``token=``: with a token, Bolt calls ``auth.test`` on the first
  request of every process, i.e. Web API I/O before an ack. We call ``auth.test`` once at
  startup in a thread (``SlackBot.check_token``) and authorize every request from memory.
- Two clients: Bolt's ``AsyncWebClient`` is only there because Bolt wants one; the work
  after the ack uses one sync ``WebClient`` with 429 retries in worker threads.
- Slash commands over HTTP skip Bolt's dispatch (``SlackBot.answer``): for a command, every
  step of it is either done by opsbot already (the signature, the workspace guard) or does
  nothing (authorize from memory, events-only middleware), and it was most of an ack's CPU.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.request.internals import extract_enterprise_id, extract_team_id
from slack_bolt.response import BoltResponse
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from bot.settings import Settings
from bot.slack.form_jobs import AUDIT_SHORTCUT, ROLLBACK_SHORTCUT
from bot.slack.form_listeners import RUNBOOK_SHORTCUT, FormListeners
from bot.slack.jobs import Handoff
from bot.slack.listeners import (
    ANY_ACTION,
    OPS_COMMAND,
    BlockActionsGuard,
    SlackListeners,
    WorkspaceGuard,
    delivery_id,
    signed_delivery_id,
)
from bot.slack.modals import FIELD_ACTION, FORM_CALLBACK
from bot.slack.notifier import api_base_url
from bot.slack.payloads import slash_command_form
from bot.slack.rate_limits import PersonRateLimits
from bot.slack.signatures import RefusalLog, signature_refusal_reason
from commands.parser import CommandRequest
from commands.spec import CommandSpec
from commands.vocabulary import Vocabulary

logger = logging.getLogger(__name__)

GROUP_EVENTS = ("subteam_members_changed", "subteam_updated")
"""Slack user group events (the manifest subscribes to them): each forgets that group's cached members."""
HOME_OPENED_EVENT = "app_home_opened"
"""A person opened the app's Home (or Messages) tab: opsbot publishes their home (``views.publish``)."""


@dataclass(frozen=True)
class SlackAnswer:
    """The HTTP answer to one request from Slack."""

    status: int
    body: bytes
    content_type: str


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
    """The Slack front door: verify, decode and acknowledge what Slack sends, and hand the work over.

    Where the work goes after the ack is the ``Handoff``'s business (``bot.serve`` picks one);
    this class never does the work itself and never waits for it.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        web: WebClient,
        parse: Callable[[str], CommandRequest],
        commands: Mapping[str, CommandSpec],
        handoff: Handoff,
        vocabulary: Vocabulary | None = None,
    ) -> None:
        self.settings = settings
        self.web = web
        self.handoff = handoff
        self.token: TokenCheck | None = None
        rate_limits = PersonRateLimits(per_minute=settings.rate_per_minute, burst=settings.rate_burst)
        allowed = [team.strip() for team in settings.allowed_teams.split(",") if team.strip()]
        forms = FormListeners(parse=parse, specs=commands, vocabulary=vocabulary or Vocabulary(), handoff=handoff, rate_limits=rate_limits)
        self.listeners = SlackListeners(
            parse=parse, commands=commands, handoff=handoff, rate_limits=rate_limits, allowed_teams=allowed, forms=forms
        )
        self.bolt = build_bolt_app(settings, self.listeners, self.authorization)
        secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else ""
        self._signatures = SignatureVerifier(secret) if secret else None
        self._refusals = RefusalLog()

    async def answer(self, body: bytes, headers: Mapping[str, str], client: str) -> SlackAnswer:
        """``POST /slack/events``: the signature, then the slash command or Bolt; what to send back to Slack."""
        if not self.is_signed_by_slack(body, headers):
            self._refusals.refused(signature_refusal_reason(headers, time.time()), client)
            return SlackAnswer(401, b'{"error":"invalid request"}', "application/json")
        form = slash_command_form(body, headers.get("content-type"))
        if form is not None and form.get("command") == OPS_COMMAND:
            return _slack_answer(await self._answer_command(form, headers))
        try:
            response = await self.bolt.async_dispatch(AsyncBoltRequest(body=body.decode("utf-8"), headers=dict(headers)))
        except Exception as error:
            # Bolt fails this way only while reading the request (``payload=`` not JSON, ``team: []``,
            # ``authorizations: true``): bad input rather than an opsbot bug, so one line in the log
            # (the traceback only at DEBUG), and a person who clicked still hears that nothing was done.
            logger.warning("Bolt could not decode a signed request: %s: %.200s", type(error).__name__, error)
            logger.debug("Bolt's decoding error", exc_info=True)
            self.listeners.answer_undecodable(body)
            return SlackAnswer(400, b'{"error":"malformed request"}', "application/json")
        return _slack_answer(response)

    async def _answer_command(self, form: dict[str, str], headers: Mapping[str, str]) -> BoltResponse:
        """``/ops``, signed, over HTTP: what Bolt's dispatch would answer, without the dispatch.

        For a slash command, Bolt's ssl_check, url_verification, self-event and function-token
        middleware do nothing (``ssl_check`` bodies are not commands here: they go to Bolt), its
        signature check is off (done above), and ``authorize`` answers from memory for a listener
        that never calls Slack. What is left is kept: the workspace guard, then the listener, its
        ack in Bolt's own ``AsyncAck`` (the same JSON), its errors to the same handler (HTTP 500).
        Measured with benchmarks/ack_cpu.py: Bolt's dispatch was most of an ack's CPU.
        """
        refusal = self.listeners.refusal_for_workspace(form, team_id=extract_team_id(form), enterprise_id=extract_enterprise_id(form))
        if refusal is not None:
            return refusal
        ack = AsyncAck()  # type: ignore[no-untyped-call]
        delivery = signed_delivery_id(headers.get("x-slack-signature"), headers.get("x-slack-request-timestamp"))
        try:
            await self.listeners.on_command(ack, form, delivery)
        except Exception as error:  # noqa: BLE001 - as Bolt's listener runner: logged with an id, HTTP 500
            await self.listeners.on_error(error, form)
            return BoltResponse(status=500, body="")
        # A listener that returned without acking is acked empty, as Bolt's listener runner does.
        return ack.response if ack.response is not None else await ack()

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
            reason = str(getattr(error, "reason", "") or error).splitlines()[0][:160] if str(error) else type(error).__name__
            detail = f"Slack unreachable at {self.web.base_url} ({reason}); /readyz says not ready until it answers"
            self.token = TokenCheck(ok=False, detail=detail)
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

    The signature is verified once, before Bolt even decodes the body (``SlackBot.answer``, for every
    request to /slack/events; Socket Mode requests come over
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
        await listeners.on_command(ack, body, delivery_id(request))  # Socket Mode (HTTP commands skip Bolt: SlackBot.answer)

    async def button_clicked(ack: AsyncAck, body: dict[str, Any], request: AsyncBoltRequest) -> None:
        await listeners.on_block_action(ack, body, request)

    async def group_changed(ack: AsyncAck, body: dict[str, Any]) -> None:
        await listeners.on_group_changed(ack, body)

    async def home_opened(ack: AsyncAck, body: dict[str, Any]) -> None:
        await listeners.on_home_opened(ack, body)

    async def listener_failed(error: Exception, body: dict[str, Any]) -> None:
        await listeners.on_error(error, body)

    app.middleware(WorkspaceGuard(listeners))
    app.middleware(BlockActionsGuard(listeners))
    app.command(OPS_COMMAND)(ops_command)
    app.block_action(ANY_ACTION)(button_clicked)
    for event in GROUP_EVENTS:  # approvals must not trust a membership Slack just said changed
        app.event(event)(group_changed)
    app.event(HOME_OPENED_EVENT)(home_opened)
    app.error(listener_failed)
    if listeners.forms is not None:
        configure_forms(app, listeners.forms)


def configure_forms(app: AsyncApp, forms: FormListeners) -> None:
    """Forms and shortcuts: submissions, version suggestions (served at the same URL, ``app.options``), shortcuts."""

    async def form_submitted(ack: AsyncAck, body: dict[str, Any], request: AsyncBoltRequest) -> None:
        await forms.on_submission(ack, body, delivery_id(request))

    async def versions_asked(ack: AsyncAck, body: dict[str, Any]) -> None:
        await forms.on_suggestion(ack, body)

    async def shortcut_used(ack: AsyncAck, body: dict[str, Any]) -> None:
        await forms.on_shortcut(ack, body)

    app.view(FORM_CALLBACK)(form_submitted)
    app.options(re.compile("^" + re.escape(FIELD_ACTION)))(versions_asked)
    for callback_id in (RUNBOOK_SHORTCUT, ROLLBACK_SHORTCUT, AUDIT_SHORTCUT):
        app.shortcut(callback_id)(shortcut_used)


def _slack_answer(response: BoltResponse) -> SlackAnswer:
    content_type = response.first_headers_without_set_cookie().get("content-type", "text/plain;charset=utf-8")
    return SlackAnswer(response.status, response.body.encode("utf-8"), content_type)


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
