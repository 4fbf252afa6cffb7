"""Built-ins about requests: help, history, approvals, show, cancel."""

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
from bot.store.states import RequestState
from commands.parser import CommandRequest


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
    reply.private(history_message(rows, f"History of {where}", deciders))


def show_waiting(desk: Desk, parsed: CommandRequest, invocation: Invocation, reply: Replier) -> None:
    with desk.database.reading() as session:
        rows = request_store.list_requests(session, states=[RequestState.PENDING_APPROVAL], limit=50)
    reply.private(history_message(rows, "Waiting for approval"))


def show_request(desk: Desk, parsed: CommandRequest, invocation: Invocation, reply: Replier) -> None:
    request_id = int(str(parsed.params["request"]))
    with desk.database.reading() as session:
        row = request_store.get_request(session, request_id)
        events = audit_store.tail(session, limit=30, request_id=request_id)
    if row is None:
        raise RequestNotFound(f"There is no request #{request_id}.")
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


def cancel_request(desk: Desk, parsed: CommandRequest, invocation: Invocation, reply: Replier) -> None:
    request_id = int(str(parsed.params["request"]))
    row = cancel(desk.database, desk.groups, request_id=request_id, actor=invocation.actor, now=desk.clock())
    desk.board.redraw(row)
    if row.state == RequestState.RUNNING:
        reply.private(Message.plain(f"Stopping #{request_id}: the current step is being cancelled."))
    else:
        reply.private(Message.plain(f"{request_title(row)} is cancelled."))
