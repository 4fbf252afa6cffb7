"""What a Slack listener hands over after the ack, and how that work is done.

A listener never does the work itself: it builds a ``Job`` (plain, picklable data) and gives
it to a ``Handoff``. ``bot.serve`` provides the two kinds: ``LocalHandoff`` queues the job in
this process's post-ack pool (tests, one process), ``SocketHandoff`` sends it to an executor
process that ``opsbot serve`` runs beside its HTTP workers, so the work never shares an
interpreter (and its GIL, and its garbage collector) with the event loop that acks Slack.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from slack_sdk import WebClient

from bot.audit.events import Actor
from bot.errors import UsageError
from bot.messages import Message, MessageRef, escape
from bot.requests.front_door import FrontDoor
from bot.requests.invocation import Click, Invocation
from bot.slack.form_jobs import FormOpener
from bot.slack.replier import SlackReplier
from commands.parser import CommandRequest

logger = logging.getLogger(__name__)

BUSY_TEXT = "opsbot is busy with a burst of commands and could not take that one; nothing was done. Try again in a few seconds."
"""What a person whose command was shed hears, in the ack or after it."""


@dataclass(frozen=True)
class ReplyTarget:
    """Where private replies about a job go: the person, the channel, the interaction's response_url."""

    user_id: str
    channel: str
    response_url: str | None


@dataclass(frozen=True)
class CommandJob:
    """A parsed ``/ops`` command to run to its end."""

    invocation: Invocation
    parsed: CommandRequest
    reply: ReplyTarget


@dataclass(frozen=True)
class ClickJob:
    """A button press to act on."""

    click: Click
    reply: ReplyTarget


@dataclass(frozen=True)
class RejectedJob:
    """A command that failed to parse (answered in the ack): audit it."""

    invocation: Invocation
    message: str
    usage: str | None


@dataclass(frozen=True)
class NoticeJob:
    """Tell a person something privately (an unusable payload, a refused workspace, busy)."""

    reply: ReplyTarget
    text: str


@dataclass(frozen=True)
class ShedJob:
    """A command that was acked, then gave way in a full queue to someone with fewer queued: tell its person, audit it."""

    command: CommandJob


@dataclass(frozen=True)
class RateLimitedJob:
    """A person over their command rate was told to slow down in the ack: audit it (once per burst, not per command)."""

    invocation: Invocation
    command: str
    retry_after: int
    refused: int


@dataclass(frozen=True)
class RefusedJob:
    """A command or click refused on the ack path for who sent it (another organisation): audit it, tell them if not yet told."""

    user_id: str
    channel: str
    outcome: str
    detail: str
    notice: NoticeJob | None


@dataclass(frozen=True)
class FormJob:
    """Open (with ``trigger_id``) or redraw (``view_id`` + ``view_hash``) the runbook picker or a runbook's form.

    ``runbook`` None is the picker; ``given`` are the answers so far (typed words, or the form's
    current values when a service or env changed). Queued with the clicks: a ``trigger_id`` is
    only good for three seconds.
    """

    actor: Actor
    channel: str | None
    runbook: str | None
    given: dict[str, str]
    trigger_id: str | None = None
    view_id: str | None = None
    view_hash: str | None = None
    reply: ReplyTarget | None = None


@dataclass(frozen=True)
class ShortcutJob:
    """A message shortcut on a message: open the rollback form for its request's target, or show its audit trail."""

    shortcut: str
    actor: Actor
    message: MessageRef
    request_id: int | None
    trigger_id: str
    reply: ReplyTarget


@dataclass(frozen=True)
class GroupChangedJob:
    """Slack said a user group changed: forget its members everywhere (the shared cache), at once."""

    group_id: str | None


@dataclass(frozen=True)
class HomeOpenedJob:
    """Someone opened opsbot's App Home tab: publish their home (and remember them for later changes)."""

    user_id: str


Job = (
    CommandJob
    | ClickJob
    | RejectedJob
    | NoticeJob
    | ShedJob
    | RateLimitedJob
    | RefusedJob
    | GroupChangedJob
    | HomeOpenedJob
    | FormJob
    | ShortcutJob
)


class HandoffBusy(Exception):
    """Too much work is queued: the command is refused with a clear "busy" answer."""


class HandoffUnavailable(Exception):
    """Nothing can take work now (shutting down, executor gone)."""


class Handoff(Protocol):
    """Takes a job after the ack; must return at once and never do the job inline."""

    async def start(self) -> None:
        """On the serving loop, before the first request: connect to whatever does the jobs."""

    async def close(self) -> None:
        """On the serving loop, at shutdown: hand over what is queued, then disconnect."""

    def submit(self, job: Job) -> None:
        """Queue ``job``; raise ``HandoffBusy`` (new commands only) or ``HandoffUnavailable``."""

    def is_available(self) -> bool:
        """Whether jobs can be taken right now (``/readyz``)."""


class JobRunner:
    """Does a job with the core: the same calls whichever process runs it."""

    def __init__(self, front_door: FrontDoor, client: WebClient) -> None:
        self._front_door = front_door
        self._client = client
        self._forms = FormOpener(front_door, client)

    def run(self, job: Job) -> None:
        if isinstance(job, CommandJob):
            self._front_door.handle_command(job.invocation, self.replier(job.reply), job.parsed)
        elif isinstance(job, ClickJob):
            self._front_door.handle_click(job.click, self.replier(job.reply))
        elif isinstance(job, RejectedJob):
            self._front_door.record_rejected(job.invocation, UsageError(job.message, usage=job.usage))
        elif isinstance(job, ShedJob):
            self.refuse_busy(job.command)
        elif isinstance(job, RateLimitedJob):
            self._front_door.record_rate_limited(job.invocation, job.command, retry_after=job.retry_after, refused=job.refused)
        elif isinstance(job, FormJob):
            self._forms.show(job, self.replier(job.reply) if job.reply is not None else None)
        elif isinstance(job, ShortcutJob):
            self._forms.on_message_shortcut(job, self.replier(job.reply))
        elif isinstance(job, GroupChangedJob):
            self._front_door.group_changed(job.group_id)
        elif isinstance(job, HomeOpenedJob):
            self._front_door.home_opened(job.user_id)
        elif isinstance(job, RefusedJob):
            self._front_door.record_refused(job.user_id, job.channel, job.outcome, job.detail)
            if job.notice is not None:
                self.run(job.notice)
        else:
            self.replier(job.reply).private(Message.plain(escape(job.text)))

    def refuse_busy(self, job: CommandJob) -> None:
        """A command shed for lack of capacity: say so to its person, and put it in the audit log."""
        self.replier(job.reply).private(Message.plain(escape(BUSY_TEXT)))
        self._front_door.record_shed(job.invocation, job.parsed)

    def replier(self, target: ReplyTarget) -> SlackReplier:
        return SlackReplier(self._client, user_id=target.user_id, channel=target.channel, response_url=target.response_url)
