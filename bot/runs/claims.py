"""Claiming an approved request for a run: the policy asked again, the target's lock, one transaction.

A request waits between its approval and its start (a busy run pool, the recovery sweep), and the
world moves meanwhile: a freeze begins, the requester leaves a group, someone locks the target.
Each of those ends the request **not started**, with why, audited; nothing was changed, so it is
neither a failure nor announced in the incident channel.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.audit.events import SYSTEM, EventType
from bot.audit.factories import request_event
from bot.catalog.catalog import Catalog
from bot.catalog.durations import humanize_age
from bot.catalog.runbooks import Runbook
from bot.errors import OpsbotError
from bot.runs.steps import PreparedStep, is_mutating, prepare_steps
from bot.store import audit as audit_store
from bot.store import locks as lock_store
from bot.store import requests as request_store
from bot.store.database import Database
from bot.store.models import RequestRow, TargetLockRow
from bot.store.states import RequestState
from bot.timefmt import clock_time

LOCK_MARGIN = timedelta(minutes=5)

Admission = Callable[[RequestRow, Sequence[str]], str | None]
"""The policy asked again for a stored request and its approvers: None if it may still run, else why not."""


@dataclass(frozen=True)
class Claimed:
    """A request this runner moved to ``running``, with what it will run and whose approvals let it."""

    row: RequestRow
    runbook: Runbook
    steps: list[PreparedStep]
    approvers: tuple[tuple[str, str], ...] = ()
    """(user id, name) of the valid approvals, read in the claim's transaction (gitops commits name them)."""


@dataclass(frozen=True)
class NotStarted:
    """A request refused at its start (stored as ``not_started``, with why)."""

    row: RequestRow


def claim(
    database: Database, catalog: Catalog, *, request_id: int, runner_id: str, lease: timedelta, admission: Admission | None, now: datetime
) -> Claimed | NotStarted | None:
    """approved → running and the target's lock in one transaction; None if it is not ours to start."""
    problem = _policy_problem(database, request_id, admission)
    with database.transaction() as session:
        row = request_store.get_request(session, request_id)
        if row is None or row.state != RequestState.APPROVED:
            return None
        runbook = catalog.runbook(row.runbook)
        if not request_store.transition(
            session, request_id, expected=[RequestState.APPROVED], new=RequestState.RUNNING, now=now,
            runner_id=runner_id, lease_expires_at=now + lease, started_at=now,
        ):  # fmt: skip
            return None
        steps: list[PreparedStep] = []
        if problem is None:
            problem, steps = _prepare(catalog, row, runbook)
        if problem is None and runbook is not None and is_mutating(steps):
            holder = lock_store.try_acquire(
                session, service=row.service, env=row.env, kind="run", holder_id=row.requester_id,
                holder_name=row.requester_name, now=now, expires_at=now + runbook.timeout + LOCK_MARGIN,
                request_id=row.id, runbook=row.runbook,
            )  # fmt: skip
            if holder is not None:
                problem = held_by_text(holder, now) + " Nothing was changed; request again when it is free."
        if problem is not None:
            request_store.transition(
                session, request_id, expected=[RequestState.RUNNING], new=RequestState.NOT_STARTED, now=now,
                finished_at=now, result=problem, lease_expires_at=None,
            )  # fmt: skip
            audit_store.append_events(
                session, [request_event(row, EventType.NOT_STARTED, SYSTEM, outcome="not_started", reason=problem)], now
            )
            refused = request_store.get_request(session, request_id)
            assert refused is not None
            return NotStarted(refused)
        audit_store.append_events(session, [request_event(row, EventType.STARTED, SYSTEM, outcome="started", runner=runner_id)], now)
        votes = request_store.valid_approvals(session, row.id, row.params_hash, row.plan_hash)
        fresh = request_store.get_request(session, request_id)
    assert runbook is not None and fresh is not None
    return Claimed(fresh, runbook, steps, tuple((vote.user_id, vote.user_name) for vote in votes))


def held_by_text(lock: TargetLockRow, now: datetime) -> str:
    """Plain text for a stored result: ``checkout/production is locked by request #12 (deploy by alice, 3 min ago).``"""
    age = humanize_age((now - lock.acquired_at).total_seconds())
    target = f"{lock.service}/{lock.env}"
    if lock.kind == "run" and lock.request_id is not None:
        return f"{target} is locked by request #{lock.request_id} ({lock.runbook} by {lock.holder_name}, {age})."
    reason = f": {lock.reason}" if lock.reason else ""
    return f"{target} is locked by {lock.holder_name} ({age}, until {clock_time(lock.expires_at, now)}){reason}."


def _policy_problem(database: Database, request_id: int, admission: Admission | None) -> str | None:
    """Asked before the claim's transaction: the policy may look up Slack user groups (network calls)."""
    if admission is None:
        return None
    with database.reading() as session:
        row = request_store.get_request(session, request_id)
        if row is None or row.state != RequestState.APPROVED:
            return None
        approvers = [vote.user_id for vote in request_store.valid_approvals(session, row.id, row.params_hash, row.plan_hash)]
    reason = admission(row, approvers)
    return None if reason is None else f"the policy no longer allows it: {reason} Nothing was changed."


def _prepare(catalog: Catalog, row: RequestRow, runbook: Runbook | None) -> tuple[str | None, list[PreparedStep]]:
    if runbook is None:
        return f"the runbook {row.runbook!r} no longer exists; nothing was changed", []
    try:
        target = catalog.target(row.service, row.env)
        return None, prepare_steps(catalog, runbook, target, row.params)
    except (KeyError, OpsbotError) as error:
        message = error.user_message if isinstance(error, OpsbotError) else f"{row.service}/{row.env} is no longer in the catalog"
        return f"{message.removesuffix('.')}; nothing was changed", []  # a step's complaint ends with a full stop
