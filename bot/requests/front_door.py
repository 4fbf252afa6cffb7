"""The front door: one code path for Slack and the shell, from a typed command or a click to its end.

``handle_command`` and ``handle_click`` run after the ack (in the post-ack pool or the shell),
may call backends and Slack, and never raise: every error becomes a private reply a person
can act on (an unexpected one gets an error id for the logs), and every decision is audited.
A signed Slack delivery acts once across replicas (``bot.store.replays``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from typing import Any

from bot.audit.events import Actor, EventType
from bot.audit.factories import actor_event
from bot.errors import OpsbotError, UsageError, report_internal_error
from bot.logs import log_context
from bot.messages import Message, Replier, escape
from bot.requests.app_home import AppHome
from bot.requests.builtins import Builtin
from bot.requests.clicks import Clicks, request_id_of
from bot.requests.desk import Desk
from bot.requests.form_desk import Forms
from bot.requests.intake import Intake
from bot.requests.invocation import Click, Invocation
from bot.store import audit as audit_store
from bot.store import replays as replay_store
from bot.store.models import RequestRow
from commands.parser import CommandRequest

logger = logging.getLogger(__name__)


class FrontDoor:
    """Turns invocations and clicks into built-in answers, requests, decisions and runs."""

    def __init__(self, *, desk: Desk, builtins: Mapping[str, Builtin], intake: Intake, clicks: Clicks, home: AppHome | None = None) -> None:
        self.forms = Forms(desk=desk)
        """Pickers and forms for a person (what they may choose), for the front ends that draw them."""
        self._desk = desk
        self._builtins = builtins
        self._intake = intake
        self._clicks = clicks
        self._home = home

    def handle_command(self, invocation: Invocation, reply: Replier, parsed: CommandRequest | None = None) -> None:
        """Run a typed command to its end; never raises. A replayed delivery is dropped."""
        with (
            log_context(user=invocation.actor.user_id, channel=invocation.channel, command=parsed.command if parsed else None),
            answering_errors(reply),
        ):
            # A replayed `help` or `history` changes nothing and shows the sender nothing new: only
            # commands that can change state pay for the cross-replica dedupe (a database write).
            read_only = parsed is not None and parsed.command in self._builtins and self._builtins[parsed.command].read_only
            if self._is_replay(None if read_only else invocation.delivery, invocation.actor.user_id, invocation.channel):
                return
            command = parsed if parsed is not None else self._intake.parse_audited(invocation)
            builtin = self._builtins.get(command.command) if command.builtin else None
            if builtin is not None:
                builtin.handle(self._desk, command, invocation, reply)
            elif command.builtin:
                raise UsageError(f"`{command.command}` is not available in this deployment.")
            else:
                self._intake.request(command, invocation, reply)

    def request_for_client(self, invocation: Invocation, parsed: CommandRequest, reply: Replier) -> RequestRow | None:
        """A runbook asked for by an inbound-API client: the same intake as a typed command; refusals are raised, not replied.

        The client's HTTP worker already checked its credentials, replays and parsing
        (``bot.api``); what is left is exactly a typed command's path: gate, lock, plan, record,
        the approval message in the channel. None: answered at once (read-only, nothing to do).
        """
        with log_context(user=invocation.actor.user_id, channel=invocation.channel, command=parsed.command):
            if parsed.builtin:
                raise UsageError(f"`{parsed.command}` is a built-in command; the API asks for runbooks.")
            return self._intake.request(parsed, invocation, reply)

    def handle_click(self, click: Click, reply: Replier) -> None:
        """Act on a button press; never raises. A replayed delivery is dropped.

        A click on the App Home has no channel or response_url to answer in: its answer goes at
        the top of the person's home, which is published again.
        """
        if click.home_view is not None and self._home is not None:
            reply = self._home.replier(click.actor.user_id)
        with (
            log_context(user=click.actor.user_id, channel=click.channel, action=str(click.action), request_id=request_id_of(click.value)),
            answering_errors(reply),
        ):
            if not self._is_replay(click.delivery, click.actor.user_id, click.channel):
                self._clicks.handle(click, reply)

    def home_opened(self, user_id: str) -> None:
        """A person opened opsbot's App Home tab: remember them and publish their home (never raises)."""
        if self._home is None:
            return
        with log_context(user=user_id), answering_errors(NO_REPLY):
            self._home.opened(user_id)

    def record_rejected(self, invocation: Invocation, error: UsageError) -> None:
        """Audit a command that failed to parse on the ack path (the reply already went out).

        The same replay rule as every delivery: a signed usage error sent five times is one
        ``command_rejected`` row (and four ``replay_rejected``), not five rejections.
        """
        with answering_errors(NO_REPLY):
            if self._is_replay(invocation.delivery, invocation.actor.user_id, invocation.channel):
                return
        self._audit_quietly(invocation, "usage", error=error.user_message)

    def group_changed(self, group_id: str | None) -> None:
        """A Slack user group changed (an event): its cached members are forgotten by every process."""
        with answering_errors(NO_REPLY):
            self._desk.groups.invalidate(group_id)
        logger.info("Slack user group %s changed; its cached members were forgotten", group_id or "(unknown)")

    def record_refused(self, user_id: str, channel: str, outcome: str, detail: str) -> None:
        """Audit a command or click refused on the ack path for who sent it (a person from another organisation)."""
        event = actor_event(EventType.COMMAND_REJECTED, _anonymous(user_id), channel=channel, outcome=outcome, reason=detail[:300])
        with answering_errors(NO_REPLY):
            self._desk.audit_writer.append(event)

    def record_shed(self, invocation: Invocation, parsed: CommandRequest) -> None:
        """Audit a command refused because too much work was queued (its person was told "busy")."""
        self._audit_quietly(invocation, "busy", command=parsed.command)

    def record_rate_limited(self, invocation: Invocation, command: str, *, retry_after: int, refused: int) -> None:
        """Audit a person told to slow down (per-person rate limit); ``refused`` counts their refusals since the last such row."""
        self._audit_quietly(invocation, "rate_limited", command=command, retry_after=retry_after, refused=refused)

    def _audit_quietly(self, invocation: Invocation, outcome: str, **details: Any) -> None:
        event = actor_event(
            EventType.COMMAND_REJECTED, invocation.actor, channel=invocation.channel, outcome=outcome, text=invocation.text[:300], **details
        )
        with answering_errors(NO_REPLY):
            self._desk.audit_writer.append(event)

    def _is_replay(self, delivery: str | None, user_id: str, channel: str) -> bool:
        """Record the delivery; True (and audited) if any replica already acted on it."""
        if delivery is None:
            return False
        now = self._desk.clock()
        with self._desk.database.transaction() as session:
            if replay_store.first_time_seen(session, delivery, now):
                return False
            event = actor_event(EventType.REPLAY_REJECTED, _anonymous(user_id), channel=channel, outcome="replay", delivery=delivery)
            audit_store.append_events(session, [event], now)
        logger.warning("dropped a replayed Slack request (delivery %s)", delivery)
        return True


@contextlib.contextmanager
def answering_errors(reply: Replier) -> Iterator[None]:
    """Turn what goes wrong inside into a private reply: the error's own words, or an id for the logs.

    Recording a delivery or a decision is a database write: a database that is down must cost
    the person a clear reply, not an exception nobody sees in a pool thread.
    """
    try:
        yield
    except OpsbotError as error:
        reply.private(error_message(error))
    except Exception:  # noqa: BLE001 - logged with its traceback and an id by report_internal_error
        reply.private(Message.plain(report_internal_error(logger, "unhandled error")))


def error_message(error: OpsbotError) -> Message:
    """An opsbot error as a reply: its text (escaped unless opsbot built it as mrkdwn), then the usage line."""
    text = error.user_message if error.markup else escape(error.user_message)
    if isinstance(error, UsageError) and error.usage:
        text += f"\n{usage_line(error.usage)}"
    return Message.plain(text)


def usage_line(usage: str) -> str:
    """``Usage: `/ops deploy {service} …` `` (escaped: usage lines come from runbook files)."""
    return f"Usage: `/ops {escape(usage)}`"


class _NoReply:
    """For work whose person has already been answered (ack-path usage errors)."""

    def private(self, message: Message) -> None:
        logger.warning("dropped a reply after the ack: %s", message.text)


NO_REPLY = _NoReply()


def _anonymous(user_id: str) -> Actor:
    return Actor(user_id=user_id, name="")
