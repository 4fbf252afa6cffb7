"""The run engine: claim an approved request, run its steps, finish it, audit each move.

Exactly once: a run starts only by moving its request from ``approved`` to ``running`` with
one conditional UPDATE, so a second submit (double click, another replica, the recovery
sweep) finds nothing to start. While running, a heartbeat renews the request's lease and
watches for a cancel; a run whose lease lapses (its process died) is marked ``interrupted``
by any replica's recovery sweep (``bot.runs.recovery``). The engine knows no Slack: it
reports through a ``RunObserver`` that the board in ``bot.requests`` implements.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.audit.binding import plan_hash
from bot.audit.events import SYSTEM, EventType
from bot.audit.factories import request_event
from bot.backends import Backends
from bot.backends.source.whats_changing import image_moved
from bot.catalog.actions import StepContext, StepResult
from bot.catalog.catalog import Catalog
from bot.catalog.identity import IdentityMap
from bot.errors import ActionCancelled, ActionFailed, OpsbotError, StepTimeout, TargetChanged
from bot.logs import log_context
from bot.metrics import record_run
from bot.runs.claims import Admission, Claimed, NotStarted, claim
from bot.runs.recovery import interrupt_abandoned
from bot.runs.run_view import RunObserver, RunView, StepView
from bot.runs.steps import (
    PreparedStep,
    approved_context,
    build_plan,
    effective_identity,
    is_mutating,
    make_context,
    requester_identity,
)
from bot.store import audit as audit_store
from bot.store import locks as lock_store
from bot.store import requests as request_store
from bot.store.audit_writer import AuditWriter
from bot.store.database import Database
from bot.store.models import RequestRow
from bot.store.states import RequestState

logger = logging.getLogger(__name__)

ROLLBACK_SECONDS = 15 * 60
"""How long an automatic rollback may take, whatever was left of the run's own timeout."""


@dataclass(frozen=True)
class RunnerTiming:
    """How often to renew leases and look for cancels; short in tests, defaults for production."""

    lease: timedelta = timedelta(seconds=60)
    heartbeat_seconds: float = 1.0
    lease_renew_every: int = 10

    @classmethod
    def for_lease(cls, seconds: float) -> RunnerTiming:
        """A lease of ``seconds``, renewed at least three times per lease so one slow renewal never loses it.

        60 s gives the defaults (a beat a second, a renewal every 10 s); a short lease (tests,
        ``OPSBOT_RUN_LEASE_SECONDS``) beats and renews faster.
        """
        heartbeat = min(1.0, seconds / 6)
        renew_every = max(1, min(10, int(seconds / (3 * heartbeat))))
        return cls(lease=timedelta(seconds=seconds), heartbeat_seconds=heartbeat, lease_renew_every=renew_every)


class PlanChanged(ActionFailed):
    """The target no longer looks like it did when the plan was approved."""


class RunEngine:
    """Executes approved requests in its own thread pool (a rollout holds a thread for minutes)."""

    def __init__(
        self,
        *,
        database: Database,
        catalog: Catalog,
        backends: Backends,
        observer: RunObserver,
        audit_writer: AuditWriter,
        runner_id: str,
        threads: int = 8,
        clock: Callable[[], datetime],
        timing: RunnerTiming | None = None,
        identities: IdentityMap | None = None,
        admission: Admission | None = None,
    ) -> None:
        self._identities = identities
        self._database = database
        self._admission = admission
        self._catalog = catalog
        self._backends = backends
        self._observer = observer
        self._audit_writer = audit_writer
        self._runner_id = runner_id
        self._clock = clock
        self._timing = timing or RunnerTiming()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="opsbot-run")
        self._pending: set[Future[Any]] = set()
        self._idle = threading.Condition()

    @property
    def timing(self) -> RunnerTiming:
        return self._timing

    # -- scheduling ---------------------------------------------------------------------

    def submit(self, request_id: int) -> Future[Any]:
        """Start the request in the run pool if it is still approved; returns at once."""
        future = self._pool.submit(self._execute_safely, request_id)
        with self._idle:
            self._pending.add(future)
        future.add_done_callback(self._forget)
        return future

    def start(self, request_id: int, *, policy_just_asked: bool = False) -> RequestRow | None:
        """Claim the request here and now and run it in the pool; the refused request if it could not start.

        An approval click calls this so the approver hears at once why an approved request did
        not start (the target was locked meanwhile, the policy changed) instead of "about to start".
        ``policy_just_asked``: the caller asked the policy for this request and its approvers a
        moment ago (the approving vote's own transaction does, ``approvals.approve``), so the claim
        does not ask it again.
        """
        with log_context(request_id=request_id, runner=self._runner_id):
            claimed = self._claim(request_id, ask_policy=not policy_just_asked)
        if isinstance(claimed, NotStarted):
            return claimed.row
        if claimed is not None:
            future = self._pool.submit(self._run_claimed_safely, claimed)
            with self._idle:
                self._pending.add(future)
            future.add_done_callback(self._forget)
        return None

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no submitted run is left (the shell waits before its next prompt)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            while self._pending:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def shutdown(self, *, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=not wait)

    def recover(self) -> list[int]:
        """Mark runs whose process died as interrupted and start approved runs nobody picked up."""
        now = self._clock()
        with self._database.reading() as session:
            abandoned = request_store.abandoned_runs(session, now)
            stranded = request_store.approved_waiting(session, now - self._timing.lease)
        interrupted: list[int] = []
        for request_id in abandoned:
            with log_context(request_id=request_id, runner=self._runner_id):
                row = interrupt_abandoned(self._database, request_id, now)
            if row is not None:
                interrupted.append(request_id)
                self._observer.run_interrupted(row)
        for request_id in stranded:
            self.submit(request_id)
        return interrupted

    def _forget(self, future: Future[Any]) -> None:
        with self._idle:
            self._pending.discard(future)
            if not self._pending:
                self._idle.notify_all()

    # -- execution ----------------------------------------------------------------------

    def _execute_safely(self, request_id: int) -> RequestState | None:
        with log_context(request_id=request_id, runner=self._runner_id):
            try:
                return self.execute(request_id)
            except Exception:
                logger.exception("run of request %s crashed", request_id)
                return None

    def execute(self, request_id: int) -> RequestState | None:
        """Run the request here and now if it is approved; returns its final state (None if not ours)."""
        claimed = self._claim(request_id)
        if claimed is None:
            return None
        if isinstance(claimed, NotStarted):
            return RequestState.NOT_STARTED
        return self._run_claimed(claimed)

    def _run_claimed_safely(self, claimed: Claimed) -> RequestState | None:
        with log_context(request_id=claimed.row.id, runner=self._runner_id):
            try:
                return self._run_claimed(claimed)
            except Exception:
                logger.exception("run of request %s crashed", claimed.row.id)
                return None

    def _run_claimed(self, claimed: Claimed) -> RequestState:
        row = claimed.row
        with log_context(request_id=row.id, runbook=row.runbook, user=row.requester_id, service=row.service, env=row.env):
            return self._execute_claimed(claimed)

    def _execute_claimed(self, claimed: Claimed) -> RequestState:
        row, steps = claimed.row, claimed.steps
        logger.info("run of request #%s started on %s", row.id, self._runner_id, extra={"outcome": "started"})
        run = RunView(steps=[StepView(step.spec.title) for step in steps])
        started = time.monotonic()
        self._observer.run_started(row, run)
        cancel = threading.Event()
        stop_heartbeat = threading.Event()
        heartbeat = threading.Thread(
            target=self._heartbeat, args=(row.id, cancel, stop_heartbeat), name=f"opsbot-lease-{row.id}", daemon=True
        )
        heartbeat.start()
        try:
            state, result = self._run_steps(claimed, run, cancel)
        finally:
            stop_heartbeat.set()
            heartbeat.join(timeout=5)
        run.duration_seconds = time.monotonic() - started
        final = self._finish(row, state, result, run.duration_seconds)
        record_run(row.runbook, str(state), run.duration_seconds)
        logger.info("run of request #%s finished: %s", row.id, state, extra={"outcome": str(state)})
        self._observer.run_finished(final, run)
        return state

    def _claim(self, request_id: int, *, ask_policy: bool = True) -> Claimed | NotStarted | None:
        """approved → running with the target's lock (``bot.runs.claims``); a refusal is drawn at once."""
        claimed = claim(
            self._database, self._catalog, request_id=request_id, runner_id=self._runner_id, lease=self._timing.lease,
            admission=self._admission if ask_policy else None, now=self._clock(),
        )  # fmt: skip
        if isinstance(claimed, NotStarted):
            logger.info("request #%s not started: %s", request_id, claimed.row.result, extra={"outcome": "not_started"})
            self._observer.run_not_started(claimed.row)
        return claimed

    def _run_steps(self, claimed: Claimed, run: RunView, cancel: threading.Event) -> tuple[RequestState, str]:
        row, runbook, steps, approvers = claimed.row, claimed.runbook, claimed.steps, claimed.approvers
        run_deadline = time.monotonic() + runbook.timeout.total_seconds()
        progress = _ProgressLog(self, row, run)
        base = make_context(
            request_id=row.id, service=row.service, env=row.env, target=self._catalog.target(row.service, row.env),
            actor_id=row.requester_id, actor_name=row.requester_name, backends=self._backends,
            progress=progress.line, cancel_event=cancel, timeout_seconds=runbook.timeout.total_seconds(),
            runbook=row.runbook, approvers=approvers,
        )  # fmt: skip
        mutated = False
        rollback_point: dict[str, Any] | None = None
        current: StepView | None = None
        try:
            base.identity = requester_identity(self._identities, row.requester_id, base.target)
            try:
                self._check_plan(row, steps, base)
            except PlanChanged as stale:
                _skip_rest(run)
                return RequestState.NOT_STARTED, stale.user_message
            support = self._catalog.registry.rollback_for(base.target.kind)
            if runbook.on_failure == "rollback" and support is not None and is_mutating(steps):
                rollback_point = support.capture(base)
            summaries: list[str] = []
            for step, view in zip(steps, run.steps, strict=True):
                current = view
                run.touched = run.touched or step.action.mutating
                result = self._run_step(row, step, view, base, run_deadline, progress)
                mutated = mutated or step.action.mutating
                summaries.append(result.summary)
            return RequestState.SUCCEEDED, summaries[-1] if summaries else "done"
        except (ActionFailed, ActionCancelled, OpsbotError) as error:
            message = error.user_message
            if current is not None:
                current.state = "cancelled" if isinstance(error, ActionCancelled) else "failed"
                current.summary = message
                self._audit(row, EventType.STEP_FAILED, outcome=type(error).__name__, step=current.title, error=message)
            _skip_rest(run)
            if isinstance(error, TargetChanged) and not mutated:
                return RequestState.NOT_STARTED, message  # refused before anything changed, like a stale plan
            if isinstance(error, ActionCancelled):
                return self._stopped(row, base, rollback_point if mutated else None, current, progress)
            if rollback_point is not None and mutated:
                return self._roll_back(row, base, rollback_point, message, progress)
            return RequestState.FAILED, message
        except Exception as error:
            error_id = uuid.uuid4().hex[:8]
            logger.exception("unexpected error in request %s (error id %s)", row.id, error_id)
            if current is not None:
                current.state = "failed"
            _skip_rest(run)
            message = f"internal error (id {error_id}): {type(error).__name__}; the platform team can find it in the logs"
            if rollback_point is not None and mutated:
                return self._roll_back(row, base, rollback_point, message, progress)
            return RequestState.FAILED, message

    def _stopped(
        self, row: RequestRow, ctx: StepContext, point: dict[str, Any] | None, step: StepView | None, progress: _ProgressLog
    ) -> tuple[RequestState, str]:
        """A person pressed Stop: ``cancelled (by whom)``, undone first if it had changed something."""
        who = self._stopped_by(row.id)
        during = f" during {step.title!r}" if step is not None else ""
        if point is None:
            changed = "; it may have changed the target before it stopped" if progress.run.touched else "; nothing was changed"
            return RequestState.CANCELLED, f"{who}{during}{changed}"
        state, text = self._roll_back(row, ctx, point, f"{who}{during}", progress)
        return (RequestState.CANCELLED if state == RequestState.ROLLED_BACK else state), text

    def _stopped_by(self, request_id: int) -> str:
        """``cancelled by bob``: ``approvals.cancel`` writes who asked for the stop into the result."""
        row = self._reload(request_id)
        return row.result if row.result and row.result.startswith("cancelled by ") else "cancelled"

    def _check_plan(self, row: RequestRow, steps: list[PreparedStep], ctx: StepContext) -> None:
        """Refuse to run when the target changed since the plan that was approved.

        What's changing (commits, image, checks) is kept as approved, not asked again: a GitHub
        outage or a check turning green after the approval must not stop the run it approved.
        """
        planned = build_plan(steps, ctx)
        steps_now = [change.as_dict() for change in planned]
        current = steps_now + approved_context(row.plan or [])
        if plan_hash(current) != row.plan_hash:
            before = "; ".join(f"{item['field']} {item['before']} → {item['after']}" for item in row.plan if not item.get("context"))
            now = "; ".join(f"{item['field']} {item['before']} → {item['after']}" for item in steps_now) or "(empty)"
            before = before or "(empty)"
            raise PlanChanged(
                f"the target changed since the plan was approved (approved: {before}; now: {now}). Nothing was changed; request it again."
            )
        moved = image_moved(ctx, planned, row.plan or [])
        if moved is not None:
            raise PlanChanged(f"{moved}. Nothing was changed; request it again.")

    def _run_step(
        self, row: RequestRow, step: PreparedStep, view: StepView, base: StepContext, run_deadline: float, progress: _ProgressLog
    ) -> StepResult:
        view.state = "running"
        progress.step = view.title
        self._audit(
            row, EventType.STEP_STARTED, outcome="started", step=view.title, action=step.spec.action, identity=effective_identity(base)
        )
        self._observer.run_progressed(row, progress.run, milestone=True)
        limit = step.spec.timeout.total_seconds() if step.spec.timeout else None
        base.deadline = run_deadline if limit is None else min(run_deadline, time.monotonic() + limit)
        try:
            result = step.action.run(base, step.args)
        except StepTimeout as error:
            raise StepTimeout(f"step {view.title!r} timed out: {error.user_message}") from error
        finally:
            if step.action.mutating:
                base.plan_reads.clear()  # the plan check's reads describe the target before this step, not after
        view.state, view.summary = "done", result.summary
        recorded = {"data": result.data} if result.data else {}  # e.g. a gitops step's commit SHA, PR URL, synced revision
        self._audit(row, EventType.STEP_FINISHED, outcome="ok", step=view.title, summary=result.summary, **recorded)
        if result.details:
            self._observer.step_details(row, view.title, result.details)
        self._observer.run_progressed(row, progress.run, milestone=True)
        return result

    def _roll_back(
        self, row: RequestRow, ctx: StepContext, point: dict[str, Any], failure: str, progress: _ProgressLog
    ) -> tuple[RequestState, str]:
        support = self._catalog.registry.rollback_for(ctx.target.kind)
        assert support is not None
        run = progress.run
        self._audit(row, EventType.ROLLBACK_STARTED, outcome="started", reason=failure, point=point, identity=effective_identity(ctx))
        run.steps.append(StepView("Roll back", "running"))
        self._observer.run_progressed(row, run, milestone=True)
        ctx.cancel_event = threading.Event()  # a cancelled run must still be allowed to undo itself
        ctx.deadline = time.monotonic() + ROLLBACK_SECONDS
        try:
            result = support.restore(ctx, point)
        except Exception as error:  # noqa: BLE001 - report both failures, never mask the first
            text = error.user_message if isinstance(error, OpsbotError) else type(error).__name__
            run.steps[-1].state, run.steps[-1].summary = "failed", text
            self._audit(row, EventType.STEP_FAILED, outcome="rollback_failed", step="Roll back", error=text)
            return RequestState.FAILED, f"{failure}; the automatic rollback also failed: {text}"
        run.steps[-1].state, run.steps[-1].summary = "done", result.summary
        recorded = {"data": result.data} if result.data else {}
        self._audit(row, EventType.STEP_FINISHED, outcome="ok", step="Roll back", summary=result.summary, **recorded)
        return RequestState.ROLLED_BACK, f"{failure}; rolled back: {result.summary}"

    def _finish(self, row: RequestRow, state: RequestState, result: str, duration: float) -> RequestRow:
        # The work is done: a database restart right now must not lose how it ended (the request would
        # stay ``running`` until its lease lapsed, then be called interrupted). Past one lease, another
        # replica may have done exactly that, so give up and let the recovery sweep speak.
        return self._database.retry_while_unreachable(
            f"record how request {row.id} ended",
            lambda: self._record_finish(row, state, result, duration),
            for_seconds=self._timing.lease.total_seconds(),
        )

    def _record_finish(self, row: RequestRow, state: RequestState, result: str, duration: float) -> RequestRow:
        now = self._clock()
        event = {
            RequestState.SUCCEEDED: EventType.SUCCEEDED,
            RequestState.ROLLED_BACK: EventType.ROLLED_BACK,
            RequestState.CANCELLED: EventType.CANCELLED,
            RequestState.NOT_STARTED: EventType.NOT_STARTED,
        }.get(state, EventType.FAILED)
        with self._database.transaction() as session:
            moved = request_store.transition(
                session, row.id, expected=[RequestState.RUNNING], new=state, now=now, finished_at=now,
                result=result[:4_000], lease_expires_at=None,
            )  # fmt: skip
            lock_store.release_for_request(session, service=row.service, env=row.env, request_id=row.id)
            if moved:
                audit_store.append_events(
                    session, [request_event(row, event, SYSTEM, outcome=str(state), result=result[:2_000], seconds=round(duration, 3))], now
                )
            else:
                logger.warning("request %s finished as %s but was no longer running here (lease lost?)", row.id, state)
            fresh = request_store.get_request(session, row.id)
        assert fresh is not None
        return fresh

    def _heartbeat(self, request_id: int, cancel: threading.Event, stop: threading.Event) -> None:
        """Renew the lease and turn a cancel request in the database into the run's cancel event."""
        beats = 0
        while not stop.wait(self._timing.heartbeat_seconds):
            beats += 1
            try:
                with self._database.transaction() as session:
                    if request_store.cancel_requested(session, request_id):
                        cancel.set()
                    if beats % self._timing.lease_renew_every == 0:
                        request_store.renew_lease(session, request_id, self._runner_id, self._clock() + self._timing.lease)
            except Exception:
                logger.warning("heartbeat for request %s failed; retrying", request_id, exc_info=True)

    def _audit(self, row: RequestRow, event: EventType, *, outcome: str, **details: Any) -> None:
        """A step event: group-committed with other threads' events (it changes no state of its own)."""
        try:
            self._audit_writer.append(request_event(row, event, SYSTEM, outcome=outcome, **details))
        except Exception:
            logger.exception("could not audit %s for request %s", event, row.id)

    def _reload(self, request_id: int) -> RequestRow:
        with self._database.reading() as session:
            row = request_store.get_request(session, request_id)
        assert row is not None
        return row


class _ProgressLog:
    """Turns ``ctx.progress`` lines into audit events, the run's progress, and (throttled by the board) message updates."""

    def __init__(self, engine: RunEngine, row: RequestRow, run: RunView) -> None:
        self.engine, self.row, self.run = engine, row, run
        self.step = ""
        self._lock = threading.Lock()

    def line(self, text: str) -> None:
        with self._lock:
            self.run.add_progress(text)
        self.engine._audit(self.row, EventType.STEP_PROGRESS, outcome="progress", step=self.step, message=text)
        self.engine._observer.run_progressed(self.row, self.run, milestone=False)


def _skip_rest(run: RunView) -> None:
    for view in run.steps:
        if view.state == "pending":
            view.state = "skipped"
