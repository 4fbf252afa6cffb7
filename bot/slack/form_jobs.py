"""After the ack: build a picker or form for the person (the core decides what they may choose) and show it with ``views.*``.

A ``trigger_id`` is good for three seconds, so the form is opened first and the slower part,
asking the backends for the target's past versions, comes after it as a ``views.update``
(guarded by the view's ``hash``, so a person's newer change is never overwritten).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.errors import OpsbotError
from bot.messages import Message, Replier, escape
from bot.requests.front_door import FrontDoor, answering_errors
from bot.requests.invocation import Invocation
from bot.slack.modals import form_view, notice_view, picker_view

if TYPE_CHECKING:
    from bot.slack.jobs import FormJob, ShortcutJob

logger = logging.getLogger(__name__)

ROLLBACK_SHORTCUT = "rollback_this_deploy"
AUDIT_SHORTCUT = "show_audit_trail"
ROLLBACK_RUNBOOK = "rollback"


class FormOpener:
    """Shows forms for jobs; every refusal is said (in the modal, or privately), never raised."""

    def __init__(self, front_door: FrontDoor, client: WebClient) -> None:
        self._front_door = front_door
        self._client = client

    def show(self, job: FormJob, reply: Replier | None) -> None:
        """The picker (``job.runbook`` None) or the runbook's form, opened or redrawn; a refusal shows in the modal."""
        forms = self._front_door.forms
        form = None
        try:
            if job.runbook is None:
                view = picker_view(forms.picker(job.actor, job.channel))
            else:
                form = forms.form(job.runbook, job.actor, job.channel, job.given)
                view = form_view(form)
        except OpsbotError as error:
            view = notice_view(error.user_message if error.markup else escape(error.user_message))
        except Exception:
            logger.exception("could not build a form for %s", job.actor.user_id)
            view = notice_view("opsbot could not build that form; the error is in its log.")
        shown = self._put(view, job, reply)
        if form is None or shown is None:
            return
        try:
            suggested = forms.with_versions(form)
        except OpsbotError as error:
            logger.warning("no version suggestions for the %s form: %s", form.runbook, error.user_message)
            return
        if suggested.versions:
            self._call("views.update", lambda: self._client.views_update(view_id=shown[0], hash=shown[1], view=form_view(suggested)), reply)

    def on_message_shortcut(self, job: ShortcutJob, reply: Replier) -> None:
        """``rollback_this_deploy``: the rollback form for the message's request; ``show_audit_trail``: its events, privately."""
        with answering_errors(reply):
            row = self._front_door.forms.request_on_message(job.message, job.request_id)
            if job.shortcut == AUDIT_SHORTCUT:
                # The same `show` a person can type: the same read rule, the same audit of who looked.
                self._front_door.handle_command(Invocation(job.actor, job.message.channel, f"show {row.id}"), reply)
                return
            from bot.slack.jobs import FormJob  # jobs.py imports this module: the job types are only named here at run time

            given = {"service": row.service, "env": row.env}
            self.show(FormJob(job.actor, row.channel, ROLLBACK_RUNBOOK, given, trigger_id=job.trigger_id, reply=job.reply), reply)

    def _put(self, view: dict[str, Any], job: FormJob, reply: Replier | None) -> tuple[str, str] | None:
        """``views.update`` of the job's view, else ``views.open`` with its trigger; the shown view's id and hash."""
        if job.view_id is not None:
            view_id, view_hash = job.view_id, job.view_hash
            response = self._call("views.update", lambda: self._client.views_update(view_id=view_id, hash=view_hash, view=view), reply)
        elif job.trigger_id is not None:
            trigger = job.trigger_id
            response = self._call("views.open", lambda: self._client.views_open(trigger_id=trigger, view=view), reply)
        else:
            return None
        shown = response.get("view") if isinstance(response, dict) else None
        if not isinstance(shown, dict) or not isinstance(shown.get("id"), str):
            return None
        return shown["id"], str(shown.get("hash") or "")

    def _call(self, method: str, call: Any, reply: Replier | None) -> dict[str, Any] | None:
        try:
            return dict(call().data)
        except SlackApiError as error:
            reason = str(error.response.get("error") or error.response.status_code)
            # hash_conflict: the person changed the form again meanwhile; their newer redraw wins.
            if reason != "hash_conflict":
                logger.warning("%s failed: %s", method, reason)
                if reply is not None:
                    reply.private(
                        Message.plain(f"opsbot could not show the form (Slack said {escape(reason)}); nothing was done. Try again.")
                    )
            return None
