"""Built-ins about requests: help, history, approvals, show, cancel.

What the policy governs here: ``show``, ``history`` and ``approvals`` read requests, so once a
policy rule names ``read`` they show only the requests whose service/env a ``read`` rule lets the
asker see (``show`` of another is denied, audited); with no such rule they are open to everyone in
the workspace, as before. ``help`` lists the catalog (no request data); ``cancel`` has its own
rules (the requester, or an approver, see ``approvals.cancel``).
"""

from __future__ import annotations

from bot.catalog.grammar import help_lines
from bot.errors import RequestNotFound
from bot.messages import Message, Replier
from bot.requests.approvals import cancel, votes_of
from bot.requests.desk import Desk
from bot.requests.invocation import Invocation
from bot.requests.timeline import last_actor, timeline_line
from bot.requests.views import history_message, request_message, request_title
from bot.store import audit as audit_store
from bot.store import requests as request_store
from bot.store.models import RequestRow
from bot.store.states import RequestState
from commands.parser import CommandRequest

READ = "read"
"""The policy name of reading requests (``show``, ``history``, ``approvals``)."""


def show_help(desk: Desk, parsed: CommandRequest, invocation: Invocation, reply: Replier) -> None:
    name = parsed.params.get("command")
    lines = help_lines(desk.catalog.commands, str(name) if name else None)
    reply.private(Message(text=lines[0], title="opsbot help", sections=("\n".join(lines),)))


def show_history(desk: Desk, parsed: CommandRequest, invocation: Invocation, reply: Replier) -> None:
    limit = parsed.params.get("limit")
    with desk.database.reading() as session:
        rows = request_store.list_requests(session, service=parsed.service, env=parsed.env, limit=limit if isinstance(limit, int) else 10)
        deciders = {row.id: last_actor(audit_store.tail(session, limit=50, request_id=row.id)) for row in rows}
    where = "/".join(part for part in (parsed.service, parsed.env) if part) or "all services"
    reply.private(history_message(_readable(desk, rows, invocation), f"History of {where}", deciders))


def show_waiting(desk: Desk, parsed: CommandRequest, invocation: Invocation, reply: Replier) -> None:
    with desk.database.reading() as session:
        rows = request_store.list_requests(session, states=[RequestState.PENDING_APPROVAL], limit=50)
    reply.private(history_message(_readable(desk, rows, invocation), "Waiting for approval"))


def show_request(desk: Desk, parsed: CommandRequest, invocation: Invocation, reply: Replier) -> None:
    request_id = int(str(parsed.params["request"]))
    with desk.database.reading() as session:
        row = request_store.get_request(session, request_id)
        events = audit_store.tail(session, limit=30, request_id=request_id)
    if row is None:
        raise RequestNotFound(f"There is no request #{request_id}.")
    if desk.gate.governs(READ):
        desk.gate.authorize(command=READ, service=row.service, env=row.env, params={}, actor=invocation.actor, channel=invocation.channel)
    message = request_message(
        row, votes=votes_of(desk.database, row.id), target=desk.catalog.describe_target(row.service, row.env), now=desk.clock()
    )
    timeline = "\n".join(timeline_line(event) for event in events)
    reply.private(
        Message(
            text=message.text, title=message.title, sections=(*message.sections, f"*Audit:*\n{timeline}"),
            fields=message.fields, context=message.context,
        )
    )  # fmt: skip


def _readable(desk: Desk, rows: list[RequestRow], invocation: Invocation) -> list[RequestRow]:
    """The rows a ``read`` rule lets this person see (all of them while no rule names ``read``)."""
    if not desk.gate.governs(READ):
        return rows
    actor, channel = invocation.actor, invocation.channel
    return [row for row in rows if desk.gate.allows(command=READ, service=row.service, env=row.env, actor=actor, channel=channel)]


def cancel_request(desk: Desk, parsed: CommandRequest, invocation: Invocation, reply: Replier) -> None:
    request_id = int(str(parsed.params["request"]))
    row = cancel(desk.database, desk.groups, request_id=request_id, actor=invocation.actor, now=desk.clock())
    desk.board.redraw(row)
    if row.state == RequestState.RUNNING:
        reply.private(Message.plain(f"Stopping #{request_id}: the current step is being cancelled."))
    else:
        reply.private(Message.plain(f"{request_title(row)} is cancelled."))
