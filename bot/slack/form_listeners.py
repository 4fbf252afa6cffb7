"""Bolt listeners for forms and shortcuts: answer inside Slack's 3-second window, hand the rest over.

The ack path stays local and fast, as for slash commands: a submitted form is checked with
the grammar's own conversions (``check_answers``) and parsed into the same ``CommandRequest``
as typed text, so field errors come back in the ack (``response_action: errors``) and a valid
form becomes the same ``CommandJob`` a typed ``/ops`` would (policy, plan and approval follow
after the ack, in the front door). Opening or redrawing a view needs the policy (which services
a person may act on) and the backends (past versions): that is a ``FormJob`` for the core.
Version suggestions are answered here from the view itself: the core put them in the form's
metadata when it drew it, so ``block_suggestion`` never waits for a backend.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck

from bot.errors import UsageError
from bot.metrics import record_command
from bot.requests.forms import CHANNEL_FIELD, answers_text, check_answers
from bot.requests.invocation import Invocation
from bot.slack.form_jobs import AUDIT_SHORTCUT, ROLLBACK_SHORTCUT
from bot.slack.form_payloads import FormChange, form_change, form_submission, shortcut, suggestion_query
from bot.slack.jobs import CommandJob, FormJob, Handoff, HandoffBusy, HandoffUnavailable, Job, ReplyTarget, ShortcutJob
from bot.slack.modals import errors_answer, picked_runbook, suggestion_options
from bot.slack.rate_limits import PersonRateLimits
from commands.parser import CommandRequest
from commands.partial import bind_partially
from commands.spec import CommandSpec
from commands.vocabulary import Vocabulary

logger = logging.getLogger(__name__)

RUNBOOK_SHORTCUT = "run_runbook"
UNAVAILABLE_FORM = "opsbot is restarting and could not take that just now; nothing was done. Try again in a minute."


class FormListeners:
    """Opening forms (``/ops`` alone, a command missing values, shortcuts), their changes, suggestions and submissions."""

    def __init__(
        self,
        *,
        parse: Callable[[str], CommandRequest],
        specs: Mapping[str, CommandSpec],
        vocabulary: Vocabulary,
        handoff: Handoff,
        rate_limits: PersonRateLimits,
    ) -> None:
        self._parse = parse
        self._specs = specs
        self._vocabulary = vocabulary
        self._handoff = handoff
        self._rate_limits = rate_limits

    def form_for_text(self, invocation: Invocation, trigger_id: object, reply: ReplyTarget) -> bool:
        """``/ops`` alone opens the picker, ``/ops deploy checkout`` the deploy form; False when the text is neither."""
        if not isinstance(trigger_id, str) or not trigger_id:
            return False
        if not invocation.text.strip():
            return self._hand_over(FormJob(invocation.actor, invocation.channel, None, {}, trigger_id=trigger_id, reply=reply))
        partial = bind_partially(invocation.text, self._specs, self._vocabulary)
        if partial is None:
            return False
        return self._hand_over(
            FormJob(invocation.actor, invocation.channel, partial.command, partial.given, trigger_id=trigger_id, reply=reply)
        )

    async def on_submission(self, ack: AsyncAck, body: dict[str, Any], delivery: str | None) -> None:
        """A runbook form submitted: field errors in the ack, or the same command job typed text makes (the modal closes)."""
        parsed = form_submission(body)
        if parsed is None or parsed.submission.state.runbook not in self._specs:
            logger.warning("a view_submission opsbot cannot read (callback %.60r)", (body.get("view") or {}).get("callback_id"))
            await ack(response_action="errors", errors={CHANNEL_FIELD: "opsbot could not read this form; close it and open it again."})
            return
        submission, actor = parsed.submission, parsed.actor
        spec = self._specs[submission.state.runbook]
        errors = check_answers(spec, submission.answers, self._vocabulary)
        if submission.channel is None:
            errors[CHANNEL_FIELD] = "Choose the channel to post the request in."
        command: CommandRequest | None = None
        text = ""
        if not errors:
            try:
                text = answers_text(spec, submission.answers)
                command = self._parse(text)
            except UsageError as error:  # the fields each passed, the whole did not (a value no quoting carries)
                named = next((name for name in submission.answers if error.user_message.startswith(name)), CHANNEL_FIELD)
                errors[named] = error.user_message
        if errors or command is None or submission.channel is None:
            record_command(spec.name, "form_errors")
            await ack(**errors_answer(errors, submission.block_ids, submission.block_ids.get(CHANNEL_FIELD, CHANNEL_FIELD)))
            return
        if not self._rate_limits.take(actor.user_id).allowed:
            await ack(
                response_action="errors",
                errors={submission.block_ids.get(CHANNEL_FIELD, CHANNEL_FIELD): "Too many requests; wait a moment."},
            )
            return
        invocation = Invocation(actor=actor, channel=submission.channel, text=text, delivery=delivery)
        job = CommandJob(invocation, command, ReplyTarget(actor.user_id, submission.channel, parsed.response_url))
        try:
            self._handoff.submit(job)
        except (HandoffBusy, HandoffUnavailable) as refused:
            record_command(command.command, "busy")
            logger.warning("refused a form for %s: %s", command.command, refused)
            await ack(response_action="errors", errors={submission.block_ids.get(CHANNEL_FIELD, CHANNEL_FIELD): UNAVAILABLE_FORM})
            return
        record_command(command.command, "accepted")
        await ack()

    async def on_suggestion(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        """``block_suggestion`` for a version field: the form's own suggestions matching what was typed."""
        query = suggestion_query(body)
        if query is None:
            await ack(options=[])
            return
        typed, submission = query
        spec = self._specs.get(submission.state.runbook)
        name = str(body.get("action_id", "")).partition(":")[2]
        parameter = spec.parameters.get(name) if spec is not None else None
        await ack(options=suggestion_options(submission.state, typed, parameter.pattern if parameter is not None else None))

    async def on_form_action(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        """A runbook picked in the picker, or a service/env changed in a form: ack, then the core redraws the view."""
        await ack()
        actions = body.get("actions") if isinstance(body.get("actions"), list) else []
        change = form_change(body, picked_runbook(actions or []))
        if change is None:
            logger.warning("a form action opsbot cannot read")
            return
        job = self._redraw(change)
        if job is not None and not self._hand_over(job):
            logger.error("dropped a form change by %s: nothing is taking work", change.actor.user_id)

    async def on_shortcut(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        """``run_runbook`` opens the picker; the message shortcuts act on the message's request."""
        await ack()
        found = shortcut(body)
        if found is None:
            logger.warning("a shortcut opsbot cannot read (callback %.60r)", body.get("callback_id"))
            return
        if found.message is None:
            if found.callback_id == RUNBOOK_SHORTCUT:
                self._hand_over(FormJob(found.actor, None, None, {}, trigger_id=found.trigger_id))
            return
        if found.callback_id in (ROLLBACK_SHORTCUT, AUDIT_SHORTCUT):
            reply = ReplyTarget(found.actor.user_id, found.message.channel, found.response_url)
            self._hand_over(ShortcutJob(found.callback_id, found.actor, found.message, found.request_id, found.trigger_id, reply))

    def _redraw(self, change: FormChange) -> FormJob | None:
        if change.picked is not None:
            channel = change.submission.state.channel if change.submission else None
            return FormJob(change.actor, channel, change.picked, {}, view_id=change.view_id, view_hash=change.view_hash)
        if change.submission is None or change.submission.state.runbook not in self._specs:
            return None
        state = change.submission.state
        return FormJob(
            change.actor, change.submission.channel or state.channel, state.runbook, dict(change.submission.answers),
            view_id=change.view_id, view_hash=change.view_hash,
        )  # fmt: skip

    def _hand_over(self, job: Job) -> bool:
        try:
            self._handoff.submit(job)
        except (HandoffBusy, HandoffUnavailable) as refused:
            logger.warning("could not hand over a %s: %s", type(job).__name__, refused)
            return False
        return True
