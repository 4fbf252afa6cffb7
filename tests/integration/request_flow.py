"""One runbook request through the core as a person drives it: typed in the channel, then approved by a click.

Shared by the action tests (kubernetes.job, github.workflow_dispatch) that each need a request
pending approval and then its finished row, through the real front door, approvals and run engine.
"""

from __future__ import annotations

from sqlalchemy import select

from bot.audit.events import Actor
from bot.messages import ButtonAction, MessageRef
from bot.requests.invocation import Click, Invocation
from bot.serve.wiring import OpsbotCore
from bot.store.models import RequestRow
from bot.store.states import RequestState
from tests.doubles import RecordingReplier

REQUESTER, APPROVER = Actor("U0REQ", "requester"), Actor("U0A00", "approver0")


def ask(app: OpsbotCore, text: str) -> RequestRow:
    """Type ``text`` in #ops as the requester; the new request must be waiting for approval."""
    reply = RecordingReplier()
    app.front_door.handle_command(Invocation(REQUESTER, "C0OPS", text), reply)
    with app.database.reading() as session:
        row = session.scalars(select(RequestRow).order_by(RequestRow.id.desc())).first()
    assert row is not None and row.state == RequestState.PENDING_APPROVAL, reply.messages
    return row


def approve_and_finish(app: OpsbotCore, row: RequestRow) -> RequestRow:
    """Click Approve on the request's own message and wait for the run to end; the row as it ended."""
    value = f"{row.id}:{row.params_hash[:16]}:{row.plan_hash[:16]}"
    click = Click(APPROVER, "C0OPS", ButtonAction.APPROVE, value, MessageRef.from_dict(row.message_ref))
    app.front_door.handle_click(click, RecordingReplier())
    assert app.wait_idle(timeout=60)
    with app.database.reading() as session:
        done = session.get(RequestRow, row.id)
    assert done is not None
    return done
