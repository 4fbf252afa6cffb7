"""Read-only runbooks (``status`` and the like): run at once, answered as a private reply.

A question is not a change: it needs no approval, takes no lock, spends no request number and
shows no Stop button. The answer goes to the person who asked (in Slack and in the shell
alike); the audit log still records who asked what, and how it went. A read that could not
reach a cluster is the asker's answer, not an incident.
"""

from __future__ import annotations

import logging
import time

from bot.audit.events import AuditEvent, EventType
from bot.audit.factories import follow_up
from bot.catalog.actions import StepContext
from bot.catalog.runbooks import Runbook
from bot.errors import OpsbotError, report_internal_error
from bot.messages import Message, Replier, escape
from bot.runs.steps import PreparedStep
from bot.store.audit_writer import AuditWriter

logger = logging.getLogger(__name__)


def answer(
    runbook: Runbook,
    steps: list[PreparedStep],
    ctx: StepContext,
    *,
    title: str,
    received: AuditEvent,
    audit_writer: AuditWriter,
    reply: Replier,
) -> None:
    """Run every step in this thread and reply with what each found; audited as ``answered``."""
    deadline = time.monotonic() + runbook.timeout.total_seconds()
    lines: list[str] = []
    details: list[str] = []
    failure: str | None = None
    for step in steps:
        limit = step.spec.timeout.total_seconds() if step.spec.timeout else None
        ctx.deadline = deadline if limit is None else min(deadline, time.monotonic() + limit)
        try:
            result = step.action.run(ctx, step.args)
        except OpsbotError as error:
            failure = error.user_message
        except Exception:  # noqa: BLE001 - logged with its traceback and an id by report_internal_error
            failure = report_internal_error(logger, f"read-only step {step.spec.title!r} crashed")
        if failure is not None:
            lines.append(f"❌ {escape(step.spec.title)} — {escape(failure)}")
            break
        lines.append(f"✅ {escape(step.spec.title)} — {escape(result.summary)}")
        details.extend(result.details)
    said = failure if failure is not None else (lines[-1] if lines else "")
    audit_writer.append(received, follow_up(received, EventType.ANSWERED, "failed" if failure else "ok", result=said[:2_000]))
    reply.private(_message(title, lines, details, failure))


def _message(title: str, lines: list[str], details: list[str], failure: str | None) -> Message:
    # Long details are split into several private messages (and cut, said so) by the front end.
    sections = ["\n".join(lines)]
    if details:
        sections.append("\n".join(escape(line) for line in details))
    outcome = f"could not finish: {failure}" if failure else "done"
    return Message(text=f"{title}: {outcome}", title=title, sections=tuple(sections))
