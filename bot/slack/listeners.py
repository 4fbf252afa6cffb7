"""Bolt listeners: answer Slack within its 3-second window, with no I/O before the answer.

On the ack path a listener only reads the payload, parses the command text (pure CPU,
``Catalog.parse``) and hands the real work over as a ``Job`` (``Handoff.submit``, which
returns at once). Kubernetes, AWS, the database and the Slack Web API are only ever reached
after the ack. Why it matters: the app runs with ``process_before_response=True`` (Bolt
answers Slack after the listener returns, instead of Bolt's slower lazy path, see
docs/benchmarks.md), so anything slow in a listener would delay every ack behind it on the
event loop.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.middleware.async_middleware import AsyncMiddleware
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bot.errors import UsageError, report_internal_error
from bot.logs import ThrottledWarning
from bot.messages import code, escape
from bot.metrics import record_command
from bot.requests.forms import CHANNEL_FIELD
from bot.requests.front_door import error_message
from bot.requests.invocation import Invocation
from bot.slack.form_listeners import FormListeners
from bot.slack.jobs import (
    BUSY_TEXT,
    ClickJob,
    CommandJob,
    GroupChangedJob,
    Handoff,
    HandoffBusy,
    HandoffUnavailable,
    HomeOpenedJob,
    Job,
    NoticeJob,
    RateLimitedJob,
    RefusedJob,
    RejectedJob,
    ReplyTarget,
)
from bot.slack.modals import ACTION_PREFIX as FORM_ACTION_PREFIX
from bot.slack.modals import MAX_ERROR_CHARS
from bot.slack.payloads import (
    PayloadProblem,
    changed_user_group,
    first_action,
    foreign_user,
    foreign_workspace,
    home_opened_by,
    is_block_actions,
    is_slash_command,
    parse_block_action,
    parse_slash_command,
    undecodable_click,
    user_workspace,
)
from bot.slack.rate_limits import PersonRateLimits, slow_down_text
from commands.parser import CommandRequest

logger = logging.getLogger(__name__)

OPS_COMMAND = "/ops"
ANY_ACTION = re.compile(r".*")
"""Every block action is routed here, so a button opsbot does not know still gets a clear answer."""
MAX_ECHO_CHARS = 200
UNAVAILABLE = "opsbot is restarting and could not take that just now; nothing was done. Try again in a minute."


class SlackListeners:
    """The ``/ops`` command, button clicks and the payload guard, as Bolt listeners."""

    def __init__(
        self,
        *,
        parse: Callable[[str], CommandRequest],
        commands: Collection[str],
        handoff: Handoff,
        rate_limits: PersonRateLimits,
        allowed_teams: Collection[str] = (),
        forms: FormListeners | None = None,
    ) -> None:
        self.forms = forms
        self._parse = parse
        self._allowed = frozenset(allowed_teams)
        self._commands = commands
        self._handoff = handoff
        self._rate_limits = rate_limits
        self._home: tuple[str | None, str | None] | None = None
        self._busy_log = ThrottledWarning(logger)

    async def on_command(self, ack: AsyncAck, body: dict[str, Any], delivery: str | None) -> None:
        """``/ops <text>``: parse, hand the work to the pool, ack with what happens next (``delivery``: see ``delivery_id``)."""
        parsed = parse_slash_command(body, delivery=delivery)
        if isinstance(parsed, PayloadProblem):
            record_command("unknown", "bad_payload")
            logger.warning("unusable slash command payload: %s", parsed.detail)
            await ack_privately(ack, parsed.user_message)
            return
        invocation = parsed.invocation
        if not await self._within_rate(ack, invocation):
            return
        target = ReplyTarget(invocation.actor.user_id, invocation.channel, parsed.response_url)
        if not invocation.text and self._open_form(invocation, body, target):
            record_command("picker", "form")
            await ack_privately(ack, "Opening the runbook picker…")
            return
        try:
            command = self._parse(invocation.text)
        except UsageError as error:
            if self._open_form(invocation, body, target):
                # `/ops deploy checkout`: the values left out are asked in the runbook's form, not refused.
                label = self._command_label(invocation.text)
                record_command(label, "form")
                await ack_privately(ack, f"Opening the {code(label)} form for the values left out…")
                return
            record_command(self._command_label(invocation.text), "usage_error")
            # The person is answered in the ack itself; the audit row is written after it, off the event loop.
            self._hand_over(RejectedJob(invocation, error.user_message, error.usage))
            await ack_privately(ack, usage_reply(error))
            return
        except Exception:  # noqa: BLE001 - logged with its traceback and an id by report_internal_error
            record_command("unknown", "internal_error")
            await ack_privately(ack, escape(report_internal_error(logger, "could not parse a command")))
            return
        try:
            self._handoff.submit(CommandJob(invocation, command, target))
        except HandoffBusy as busy:
            record_command(command.command, "busy")
            self._busy_log.warn("refused a %s command: %s (OPSBOT_MAX_BACKLOG)", command.command, busy)
            await ack_privately(ack, BUSY_TEXT)
            return
        except HandoffUnavailable:
            record_command(command.command, "unavailable")
            await ack_privately(ack, UNAVAILABLE)
            return
        record_command(command.command, "accepted")
        await ack_privately(ack, f"Working on {code(_shorten(invocation.text))}…")

    async def on_block_action(self, ack: AsyncAck, body: dict[str, Any], request: AsyncBoltRequest) -> None:
        """A button: ack at once (Slack shows nothing for a block_actions ack), then act in the pool."""
        action = first_action(body)
        if self.forms is not None and action is not None and str(action.get("action_id")).startswith(FORM_ACTION_PREFIX):
            await self.forms.on_form_action(ack, body)
            return
        await ack()
        parsed = parse_block_action(body)
        if isinstance(parsed, PayloadProblem):
            self._answer_problem(parsed)
            return
        click = dataclasses.replace(parsed.click, delivery=delivery_id(request))
        if not self._hand_over(ClickJob(click, ReplyTarget(click.actor.user_id, click.channel, parsed.response_url))):
            logger.error("dropped a %s click by %s: nothing is taking work", click.action, click.actor.user_id)

    async def on_group_changed(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        """``subteam_members_changed`` / ``subteam_updated``: ack, then forget that group's members everywhere."""
        await ack()
        if not self._hand_over(GroupChangedJob(changed_user_group(body))):
            logger.error("could not forget a changed Slack user group: nothing is taking work")

    async def on_home_opened(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        """``app_home_opened``: ack, then publish that person's home after the ack (the Messages tab needs nothing)."""
        await ack()
        user_id = home_opened_by(body)
        if user_id is not None and not self._hand_over(HomeOpenedJob(user_id)):
            logger.error("could not publish the App Home of %s: nothing is taking work", user_id)

    def answer_unreadable_click(self, body: dict[str, Any]) -> None:
        """A block_actions payload without a usable ``actions[0]``: tell the clicker, after the ack."""
        problem = parse_block_action(body)
        if isinstance(problem, PayloadProblem):
            self._answer_problem(problem)

    def answer_undecodable(self, body: bytes) -> None:
        """A signed body Bolt could not decode: if it was a click, tell the clicker nothing was done."""
        problem = undecodable_click(body)
        if problem is not None:
            self._answer_problem(problem)

    def set_home_workspace(self, *, team_id: str | None, enterprise_id: str | None) -> None:
        """The workspace (and Enterprise Grid org) of the bot token, as ``auth.test`` reported it at startup."""
        self._home = (team_id, enterprise_id)

    def is_foreign(self, *, team_id: str | None, enterprise_id: str | None) -> bool:
        """Whether a request names a workspace other than the token's (own org's workspaces count as home).

        Before ``auth.test`` has answered, or for a payload without a team, nothing is foreign: the
        signature already proves Slack sent it, and refusing everything while Slack is slow would be worse.
        """
        if self._home is None or not team_id:
            return False
        if any(isinstance(value, str) and value in self._allowed for value in (team_id, enterprise_id)):
            return False
        home_team, home_enterprise = self._home
        if home_team is None or team_id == home_team:
            return False
        return not (home_enterprise is not None and enterprise_id == home_enterprise)

    def refusal_for_workspace(self, body: dict[str, Any], *, team_id: str | None, enterprise_id: str | None) -> BoltResponse | None:
        """The answer to a request from another workspace or by a person of another organisation; None to go on.

        ``team_id`` and ``enterprise_id`` are the request's, as Bolt's context reads them from the body.
        """
        if team_id and self.is_foreign(team_id=team_id, enterprise_id=enterprise_id):
            return self.refuse_foreign(body, team_id)
        # In a Slack Connect channel the request is this workspace's, but the person may belong to another organisation.
        user_team, user_enterprise = user_workspace(body)
        if user_team and self.is_foreign(team_id=user_team, enterprise_id=user_enterprise or enterprise_id):
            return self.refuse_foreign_user(body, user_team)
        return None

    def refuse_foreign(self, body: dict[str, Any], team_id: str) -> BoltResponse:
        """Ack a request from another workspace without acting on it, and tell its person why."""
        problem = foreign_workspace(body, team_id)
        logger.warning("refused a Slack request: %s", problem.detail)
        if is_slash_command(body):
            return BoltResponse(status=200, body={"response_type": "ephemeral", "text": problem.user_message})
        if is_block_actions(body):
            self._answer_problem(problem)
        return refusal_in_form(body, problem.user_message) or BoltResponse(status=200, body="")

    def refuse_foreign_user(self, body: dict[str, Any], team_id: str) -> BoltResponse:
        """Ack a command or click by a person of another organisation (Slack Connect) without acting; audited, told why."""
        problem = foreign_user(body, team_id)
        logger.warning("refused a Slack request: %s", problem.detail)
        told = is_slash_command(body)
        notice = None
        if not told and problem.user_id is not None and (problem.channel is not None or problem.response_url is not None):
            notice = NoticeJob(ReplyTarget(problem.user_id, problem.channel or "", problem.response_url), problem.user_message)
        if problem.user_id is not None:
            self._hand_over(RefusedJob(problem.user_id, problem.channel or "", "foreign_user", problem.detail, notice))
        if told:
            return BoltResponse(status=200, body={"response_type": "ephemeral", "text": problem.user_message})
        return refusal_in_form(body, problem.user_message) or BoltResponse(status=200, body="")

    async def on_error(self, error: Exception, body: dict[str, Any]) -> None:
        """Last resort: listeners do not raise, but if one does, the log has an id and the payload type."""
        error_id = uuid.uuid4().hex[:8]
        logger.error(
            "unhandled error in a Slack listener (error id %s, payload type %s)", error_id, body.get("type") or "command", exc_info=error
        )

    # -- helpers -----------------------------------------------------------------------------

    def _open_form(self, invocation: Invocation, body: dict[str, Any], target: ReplyTarget) -> bool:
        return self.forms is not None and self.forms.form_for_text(invocation, body.get("trigger_id"), target)

    async def _within_rate(self, ack: AsyncAck, invocation: Invocation) -> bool:
        """Spend one of the person's tokens; if none is left, say when to try again (audited once per burst) and stop."""
        decision = self._rate_limits.take(invocation.actor.user_id)
        if decision.allowed:
            return True
        label = self._command_label(invocation.text)
        record_command(label, "rate_limited")
        if decision.audit_refused is not None:
            self._hand_over(RateLimitedJob(invocation, label, decision.retry_after, decision.audit_refused))
        await ack_privately(ack, slow_down_text(decision.retry_after))
        return False

    def _hand_over(self, job: Job) -> bool:
        """Hand post-ack work over; False if nothing can take it (shutting down, executor gone)."""
        try:
            self._handoff.submit(job)
        except (HandoffBusy, HandoffUnavailable) as refused:
            logger.warning("could not hand over a %s: %s", type(job).__name__, refused)
            return False
        return True

    def _answer_problem(self, problem: PayloadProblem) -> None:
        """Log a payload opsbot cannot use and tell its person privately, after the ack."""
        logger.warning("unusable interaction payload: %s", problem.detail)
        if problem.user_id is None or (problem.channel is None and problem.response_url is None):
            return
        self._hand_over(NoticeJob(ReplyTarget(problem.user_id, problem.channel or "", problem.response_url), problem.user_message))

    def _command_label(self, text: str) -> str:
        """The command word for metrics, only if it is a known command (labels never carry user text)."""
        word = text.split(maxsplit=1)[0].lower() if text.strip() else ""
        return word if word in self._commands else "unknown"


class BlockActionsGuard(AsyncMiddleware):
    """Stops block_actions whose ``actions[0]`` is missing or malformed before Bolt indexes it.

    Bolt's matchers and its argument injection read ``body["actions"][0]["action_id"]`` blindly,
    so such a payload would be an IndexError and an HTTP 500 before any listener ran. A class
    (not a function middleware) because function middleware gets injected arguments too.
    """

    def __init__(self, listeners: SlackListeners) -> None:
        self._listeners = listeners

    async def async_process(
        self,
        *,
        req: AsyncBoltRequest,
        resp: BoltResponse,
        next: Callable[[], Awaitable[BoltResponse]],
    ) -> BoltResponse:
        body = req.body
        if is_block_actions(body) and first_action(body) is None:
            self._listeners.answer_unreadable_click(body)
            return BoltResponse(status=200, body="")
        return await next()


class WorkspaceGuard(AsyncMiddleware):
    """Refuses commands and clicks from a workspace the bot token does not belong to, and from its people.

    A person of another organisation in a shared (Slack Connect) channel sends requests with this
    workspace's ``team.id`` but their own ``user.team_id``: refused too (audited, told why), unless
    their workspace or org is in ``OPSBOT_ALLOWED_TEAMS``.

    Bolt's ``authorize`` hands our one token to any team that sends a signed request, so a
    second workspace with the app installed (or a copied signing secret) could otherwise approve
    requests here. Runs before every listener, like ``BlockActionsGuard``.
    """

    def __init__(self, listeners: SlackListeners) -> None:
        self._listeners = listeners

    async def async_process(
        self,
        *,
        req: AsyncBoltRequest,
        resp: BoltResponse,
        next: Callable[[], Awaitable[BoltResponse]],
    ) -> BoltResponse:
        refusal = self._listeners.refusal_for_workspace(req.body, team_id=req.context.team_id, enterprise_id=req.context.enterprise_id)
        return refusal if refusal is not None else await next()


def refusal_in_form(body: dict[str, Any], text: str) -> BoltResponse | None:
    """A refused form submission says why beside its channel field (an empty answer would just close the form)."""
    if body.get("type") != "view_submission":
        return None
    return BoltResponse(status=200, body={"response_action": "errors", "errors": {CHANNEL_FIELD: text[:MAX_ERROR_CHARS]}})


def delivery_id(request: AsyncBoltRequest) -> str | None:
    """A digest of the request's signature: the same signed request twice is a replay.

    Bolt accepts a signature for five minutes; the core records this id once across every
    replica (``FrontDoor`` → ``bot.store.replays``) and drops a second delivery. Socket Mode
    requests carry no signature (the WebSocket itself is authenticated): None.
    """
    return signed_delivery_id(_header(request, "x-slack-signature"), _header(request, "x-slack-request-timestamp"))


def signed_delivery_id(signature: str | None, timestamp: str | None) -> str | None:
    """``delivery_id`` from the two signature headers themselves (None without them)."""
    if not signature or not timestamp:
        return None
    return hashlib.sha256(f"{timestamp}:{signature}".encode()).hexdigest()


def _header(request: AsyncBoltRequest, name: str) -> str | None:
    values = request.headers.get(name) or []
    return values[0] if values else None


async def ack_privately(ack: AsyncAck, text: str) -> None:
    """Answer a slash command in its ack, visible only to the person who typed it."""
    await ack(text=text, response_type="ephemeral")


def usage_reply(error: UsageError) -> str:
    """The ack text for a command that did not parse: what was wrong, then the usage line."""
    return error_message(error).text


def _shorten(text: str) -> str:
    return text if len(text) <= MAX_ECHO_CHARS else text[: MAX_ECHO_CHARS - 1] + "…"
