"""Runs approved requests in a worker pool: lock the target, run the steps, report, audit.

Never on the Slack ack path. Exactly once: a run starts only by moving its request from
``approved`` to ``running`` with one conditional UPDATE, so a second submit (double click,
another replica, the recovery sweep) finds nothing to start. While running, a heartbeat
renews the request's lease and watches for a cancel; a run whose lease lapses (its
process died) is marked ``interrupted`` by any replica's recovery sweep.
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

from bot.actions.base import StepContext, StepResult
from bot.audit.events import EventType
from bot.backends import Backends
from bot.catalog import Catalog
from bot.errors import ActionCancelled, ActionFailed, OpsbotError, StepTimeout
from bot.lifecycle import Actor, plan_hash, request_event
from bot.logs import log_context
from bot.messages import Message, MessageRef, escape, mention
from bot.metrics import record_run
from bot.notifier import Notifier
from bot.runbooks.models import Runbook
from bot.states import STATE_WORDS, RequestState
from bot.steps import PreparedStep, build_plan, is_mutating, make_context, prepare_steps, target_of
from bot.store import audit as audit_store
from bot.store import locks as lock_store
from bot.store import requests as request_store
from bot.store.audit_writer import AuditWriter
from bot.store.database import Database
from bot.store.models import RequestRow
from bot.views import RunView, StepView, lock_text, request_message

logger = logging.getLogger(__name__)

SYSTEM = Actor(user_id="", name="opsbot")
LOCK_MARGIN = timedelta(minutes=5)
MAX_THREAD_DETAIL_CHARS = 2_800
UPDATE_INTERVAL_SECONDS = 1.0
FRONT_THREADS = 8
"""Threads for the work after an ack (commands, clicks); runs have their own ``threads``."""


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


class PoolBusy(RuntimeError):
    """The process has ``max_backlog`` tasks queued; a new command is refused, not queued."""


class PlanChanged(ActionFailed):
    """The target no longer looks like it did when the plan was approved."""


class Runner:
    """The worker pool that executes requests."""

    def __init__(
        self,
        *,
        database: Database,
        catalog: Catalog,
        backends: Backends,
        notifier: Notifier,
        runner_id: str,
        threads: int = 8,
        clock: Callable[[], datetime],
        timing: RunnerTiming | None = None,
        audit_writer: AuditWriter | None = None,
        max_backlog: int = 1_000,
    ) -> None:
        self._database = database
        self._catalog = catalog
        self._backends = backends
        self._notifier = notifier
        self._runner_id = runner_id
        self._clock = clock
        self._timing = timing or RunnerTiming()
        self._max_backlog = max_backlog
        self._audit_writer = audit_writer or AuditWriter(database, clock, retry_seconds=self._timing.lease.total_seconds())
        # Two pools: a rollout holds its thread for minutes while it polls, and eight of them must
        # not leave `help` or an approval click waiting behind them. Runs get their own threads.
        self._run_pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="opsbot-run")
        self._pool = ThreadPoolExecutor(max_workers=FRONT_THREADS, thread_name_prefix="opsbot-work")
        self._pending: set[Future[Any]] = set()
        self._backlog = 0
        self._pending_lock = threading.Lock()
        self._idle = threading.Condition(self._pending_lock)

    # -- scheduling ---------------------------------------------------------------------

    def submit(self, request_id: int) -> Future[Any]:
        """Start the request in the run pool if it is still approved; returns at once."""
        return self._track(self._run_pool.submit(self._execute_safely, request_id))

    def submit_task(self, function: Callable[..., Any], *args: Any, shed_when_busy: bool = False) -> Future[Any]:
        """Run any post-ack work in the pool, tracked so ``wait_idle`` can wait for it.

        ``shed_when_busy`` (new slash commands): raise ``PoolBusy`` instead of queueing behind
        ``max_backlog`` tasks. An unbounded queue would grow without limit under a flood, keep
        every ack waiting on a busier process, and answer people minutes late; a clear "busy, try
        again" is better. Runs, approvals and clicks are never shed.
        """
        with self._pending_lock:
            if shed_when_busy and self._backlog >= self._max_backlog:
                raise PoolBusy(f"{self._backlog} tasks are already queued in this process")
            self._backlog += 1
        future = self._pool.submit(function, *args)
        future.add_done_callback(self._done_with_work)
        return self._track(future)

    def _track(self, future: Future[Any]) -> Future[Any]:
        with self._pending_lock:
            self._pending.add(future)
        future.add_done_callback(self._forget)
        return future

    def _done_with_work(self, _future: Future[Any]) -> None:
        with self._pending_lock:
            self._backlog -= 1

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no submitted work is left (the shell waits before its next prompt)."""
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
        self._run_pool.shutdown(wait=wait, cancel_futures=not wait)
        self._audit_writer.close()

    @property
    def audit_writer(self) -> AuditWriter:
        """Shared with the rest of the process for standalone events (refusals, denials)."""
        return self._audit_writer

    def _forget(self, future: Future[Any]) -> None:
        # Work in the pool is meant never to raise; if some does, say so rather than let the Future keep it.
        error = None if future.cancelled() else future.exception()
        if error is not None:
            logger.error("work in the pool failed: %s", type(error).__name__, exc_info=error)
        with self._idle:
            self._pending.discard(future)
            if not self._pending:
                self._idle.notify_all()

    # -- recovery -----------------------------------------------------------------------

    def recover(self) -> list[int]:
        """Mark runs whose process died as interrupted and start approved runs nobody picked up."""
        now = self._clock()
        with self._database.reading() as session:
            abandoned = request_store.abandoned_runs(session, now)
            stranded = request_store.approved_waiting(session, now - self._timing.lease)
        interrupted = [request_id for request_id in abandoned if self._interrupt(request_id, now)]
        for request_id in stranded:
            self.submit(request_id)
        return interrupted

    def _interrupt(self, request_id: int, now: datetime) -> bool:
        with log_context(request_id=request_id, runner=self._runner_id):
            return self._interrupt_abandoned(request_id, now)

    def _interrupt_abandoned(self, request_id: int, now: datetime) -> bool:
        with self._database.transaction() as session:
            row = request_store.get_request(session, request_id)
            result = (
                "the bot process running it stopped before it finished; the target may be half-changed: "
                "check it with `status` before acting again"
            )
            if row is None or not request_store.transition(
                session, request_id, expected=[RequestState.RUNNING], new=RequestState.INTERRUPTED, now=now,
                finished_at=now, result=result, lease_expires_at=None,
            ):  # fmt: skip
                return False
            lock_store.release_for_request(session, service=row.service, env=row.env, request_id=request_id)
            audit_store.append_events(
                session,
                [request_event(row, EventType.INTERRUPTED, SYSTEM, outcome="interrupted", runner=row.runner_id or "")],
                now,
            )
            fresh = request_store.get_request(session, request_id)
        assert fresh is not None
        seconds = (now - row.started_at).total_seconds() if row.started_at is not None else 0.0
        record_run(row.runbook, str(RequestState.INTERRUPTED), seconds)
        logger.warning(
            "request #%s interrupted: runner %s stopped renewing its lease",
            request_id, row.runner_id or "?", extra={"outcome": "interrupted", "runbook": row.runbook, "user": row.requester_id},
        )  # fmt: skip
        self._publish(fresh, None)
        self._thread_note(fresh, f"⚠️ Interrupted: {result}.")
        self._announce(
            fresh, f"⚠️ {escape(fresh.runbook)} {escape(fresh.service)} in {escape(fresh.env)} (#{fresh.id}) was interrupted: {result}."
        )
        return True

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
        row, runbook, steps = claimed
        with log_context(request_id=row.id, runbook=row.runbook, user=row.requester_id, service=row.service, env=row.env):
            return self._execute_claimed(row, runbook, steps)

    def _execute_claimed(self, row: RequestRow, runbook: Runbook, steps: list[PreparedStep]) -> RequestState:
        logger.info("run of request #%s started on %s", row.id, self._runner_id, extra={"outcome": "started"})
        run = RunView(steps=[StepView(step.spec.title) for step in steps])
        started = time.monotonic()
        self._publish(row, run)
        cancel = threading.Event()
        stop_heartbeat = threading.Event()
        heartbeat = threading.Thread(
            target=self._heartbeat, args=(row.id, cancel, stop_heartbeat), name=f"opsbot-lease-{row.id}", daemon=True
        )
        heartbeat.start()
        try:
            state, result = self._run_steps(row, runbook, steps, run, cancel)
        finally:
            stop_heartbeat.set()
            heartbeat.join(timeout=5)
        run.duration_seconds = time.monotonic() - started
        final = self._finish(row, state, result, run.duration_seconds)
        record_run(row.runbook, str(state), run.duration_seconds)
        logger.info("run of request #%s finished: %s", row.id, state, extra={"outcome": str(state)})
        self._publish(final, run)
        if state in (RequestState.FAILED, RequestState.ROLLED_BACK):
            self._announce(final, _failure_announcement(final))
        return state

    def _claim(self, request_id: int) -> tuple[RequestRow, Runbook, list[PreparedStep]] | None:
        """approved → running, and take the target's lock, in one transaction."""
        now = self._clock()
        with self._database.transaction() as session:
            row = request_store.get_request(session, request_id)
            if row is None or row.state != RequestState.APPROVED:
                return None
            runbook = self._catalog.runbook(row.runbook)
            if not request_store.transition(
                session, request_id, expected=[RequestState.APPROVED], new=RequestState.RUNNING, now=now,
                runner_id=self._runner_id, lease_expires_at=now + self._timing.lease, started_at=now,
            ):  # fmt: skip
                return None
            problem, steps = self._prepare(row, runbook)
            if problem is None and runbook is not None and is_mutating(steps):
                holder = lock_store.try_acquire(
                    session, service=row.service, env=row.env, kind="run", holder_id=row.requester_id,
                    holder_name=row.requester_name, now=now, expires_at=now + runbook.timeout + LOCK_MARGIN,
                    request_id=row.id, runbook=row.runbook,
                )  # fmt: skip
                if holder is not None:
                    problem = lock_text(holder, now, plain=True) + " Nothing was changed; request again when it is free."
            if problem is not None:
                request_store.transition(
                    session, request_id, expected=[RequestState.RUNNING], new=RequestState.FAILED, now=now,
                    finished_at=now, result=problem, lease_expires_at=None,
                )  # fmt: skip
                audit_store.append_events(
                    session, [request_event(row, EventType.FAILED, SYSTEM, outcome="not_started", reason=problem)], now
                )
                failed = request_store.get_request(session, request_id)
            else:
                audit_store.append_events(
                    session, [request_event(row, EventType.STARTED, SYSTEM, outcome="started", runner=self._runner_id)], now
                )
                failed = None
        if failed is not None:
            self._publish(failed, None)
            return None
        assert runbook is not None
        fresh = self._reload(request_id)
        return fresh, runbook, steps

    def _prepare(self, row: RequestRow, runbook: Runbook | None) -> tuple[str | None, list[PreparedStep]]:
        if runbook is None:
            return f"the runbook {row.runbook!r} no longer exists; nothing was changed", []
        try:
            target = target_of(self._catalog, row.service, row.env)
            return None, prepare_steps(self._catalog, runbook, target, row.params)
        except (KeyError, OpsbotError) as error:
            message = error.user_message if isinstance(error, OpsbotError) else f"{row.service}/{row.env} is no longer in the catalog"
            return f"{message}; nothing was changed", []

    def _run_steps(
        self, row: RequestRow, runbook: Runbook, steps: list[PreparedStep], run: RunView, cancel: threading.Event
    ) -> tuple[RequestState, str]:
        run_deadline = time.monotonic() + runbook.timeout.total_seconds()
        reporter = _ProgressReporter(self, row, run)
        base = make_context(
            request_id=row.id, service=row.service, env=row.env, target=target_of(self._catalog, row.service, row.env),
            actor_id=row.requester_id, actor_name=row.requester_name, backends=self._backends,
            progress=reporter.progress, cancel_event=cancel, timeout_seconds=runbook.timeout.total_seconds(),
        )  # fmt: skip
        mutated = False
        rollback_point: dict[str, Any] | None = None
        current: StepView | None = None
        try:
            self._check_plan(row, steps, base)
            support = self._catalog.registry.rollback_for(base.target.kind)
            if runbook.on_failure == "rollback" and support is not None and is_mutating(steps):
                rollback_point = support.capture(base)
            summaries: list[str] = []
            for step, view in zip(steps, run.steps, strict=True):
                current = view
                result = self._run_step(row, step, view, base, run_deadline, reporter)
                mutated = mutated or step.action.mutating
                summaries.append(result.summary)
            return RequestState.SUCCEEDED, summaries[-1] if summaries else "done"
        except (ActionFailed, ActionCancelled, OpsbotError) as error:
            message = _failure_text(error)
            if current is not None:
                current.state = "cancelled" if isinstance(error, ActionCancelled) else "failed"
                current.summary = message
                self._audit(row, EventType.STEP_FAILED, outcome=type(error).__name__, step=current.title, error=message)
            _skip_rest(run)
            if rollback_point is not None and mutated:
                return self._roll_back(row, base, rollback_point, message, reporter)
            final = RequestState.FAILED
            return final, ("cancelled: " if isinstance(error, ActionCancelled) else "") + message
        except Exception as error:
            error_id = uuid.uuid4().hex[:8]
            logger.exception("unexpected error in request %s (error id %s)", row.id, error_id)
            if current is not None:
                current.state = "failed"
            _skip_rest(run)
            message = f"internal error (id {error_id}): {type(error).__name__}; the platform team can find it in the logs"
            if rollback_point is not None and mutated:
                return self._roll_back(row, base, rollback_point, message, reporter)
            return RequestState.FAILED, message

    def _check_plan(self, row: RequestRow, steps: list[PreparedStep], ctx: StepContext) -> None:
        """Refuse to run when the target changed since the plan that was approved."""
        current = [change.as_dict() for change in build_plan(steps, ctx)]
        if plan_hash(current) != row.plan_hash:
            before = "; ".join(f"{item['field']} {item['before']} → {item['after']}" for item in row.plan) or "(empty)"
            now = "; ".join(f"{item['field']} {item['before']} → {item['after']}" for item in current) or "(empty)"
            raise PlanChanged(
                f"the target changed since the plan was approved (approved: {before}; now: {now}). Nothing was changed; request it again."
            )

    def _run_step(
        self, row: RequestRow, step: PreparedStep, view: StepView, base: StepContext, run_deadline: float, reporter: _ProgressReporter
    ) -> StepResult:
        view.state = "running"
        reporter.step = view.title
        self._audit(row, EventType.STEP_STARTED, outcome="started", step=view.title, action=step.spec.action)
        reporter.publish(force=True)
        limit = step.spec.timeout.total_seconds() if step.spec.timeout else None
        deadline = run_deadline if limit is None else min(run_deadline, time.monotonic() + limit)
        base.deadline = deadline
        try:
            result = step.action.run(base, step.args)
        except StepTimeout as error:
            raise StepTimeout(f"step {view.title!r} timed out: {error.user_message}") from error
        view.state, view.summary = "done", result.summary
        self._audit(row, EventType.STEP_FINISHED, outcome="ok", step=view.title, summary=result.summary)
        if result.details:
            self._thread_note(row, f"*{escape(view.title)}*\n" + "\n".join(escape(line) for line in result.details))
        reporter.publish(force=True)
        return result

    def _roll_back(
        self, row: RequestRow, ctx: StepContext, point: dict[str, Any], failure: str, reporter: _ProgressReporter
    ) -> tuple[RequestState, str]:
        support = self._catalog.registry.rollback_for(ctx.target.kind)
        assert support is not None
        self._audit(row, EventType.ROLLBACK_STARTED, outcome="started", reason=failure, point=point)
        reporter.run.steps.append(StepView("Roll back", "running"))
        reporter.publish(force=True)
        ctx.cancel_event = threading.Event()  # a cancelled run must still be allowed to undo itself
        ctx.deadline = time.monotonic() + 15 * 60
        try:
            result = support.restore(ctx, point)
        except (OpsbotError, Exception) as error:  # noqa: BLE001 - report both failures, never mask the first
            text = error.user_message if isinstance(error, OpsbotError) else type(error).__name__
            reporter.run.steps[-1].state, reporter.run.steps[-1].summary = "failed", text
            self._audit(row, EventType.STEP_FAILED, outcome="rollback_failed", step="Roll back", error=text)
            return RequestState.FAILED, f"{failure}; the automatic rollback also failed: {text}"
        reporter.run.steps[-1].state, reporter.run.steps[-1].summary = "done", result.summary
        self._audit(row, EventType.STEP_FINISHED, outcome="ok", step="Roll back", summary=result.summary)
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

    # -- reporting ----------------------------------------------------------------------

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

    def _publish(self, row: RequestRow, run: RunView | None) -> None:
        ref = MessageRef.from_dict(row.message_ref)
        if ref is None:
            return
        from bot.lifecycle import votes_of

        try:
            target = target_of(self._catalog, row.service, row.env).describe()
        except KeyError:
            target = ""
        votes = self._database.retry_while_unreachable(
            f"read the votes of request {row.id}", lambda: votes_of(self._database, row.id), for_seconds=self._timing.lease.total_seconds()
        )
        self._notifier.update(ref, request_message(row, votes=votes, run=run, target=target, now=self._clock()))

    def _thread_note(self, row: RequestRow, text: str) -> None:
        ref = MessageRef.from_dict(row.message_ref)
        if ref is None:
            return
        if len(text) > MAX_THREAD_DETAIL_CHARS:
            self._notifier.upload(ref.channel, f"request-{row.id}-details.txt", text, thread=ref)
            return
        self._notifier.post(ref.channel, Message.plain(text), thread=ref)

    def _announce(self, row: RequestRow, text: str) -> None:
        service = self._catalog.config.services.get(row.service)
        channel = (service.incident_channel if service else None) or self._catalog.config.channels.incident
        if channel:
            self._notifier.post(channel, Message.plain(text))


class _ProgressReporter:
    """Turns ``ctx.progress`` lines into audit events and throttled message updates."""

    def __init__(self, runner: Runner, row: RequestRow, run: RunView) -> None:
        self.runner, self.row, self.run = runner, row, run
        self.step = ""
        self._last_update = 0.0
        self._lock = threading.Lock()

    def progress(self, line: str) -> None:
        with self._lock:
            self.run.add_progress(line)
        self.runner._audit(self.row, EventType.STEP_PROGRESS, outcome="progress", step=self.step, message=line)
        self.publish()

    def publish(self, *, force: bool = False) -> None:
        # chat.update is rate limited (Tier 3): progress lines update the message at most once a second.
        now = time.monotonic()
        if not force and now - self._last_update < UPDATE_INTERVAL_SECONDS:
            return
        self._last_update = now
        self.runner._publish(self.row, self.run)


def _skip_rest(run: RunView) -> None:
    for view in run.steps:
        if view.state == "pending":
            view.state = "skipped"


def _failure_text(error: OpsbotError) -> str:
    return error.user_message


def _failure_announcement(row: RequestRow) -> str:
    state = RequestState(row.state)
    icon = "↩️" if state == RequestState.ROLLED_BACK else "❌"
    return (
        f"{icon} {escape(row.runbook)} {escape(row.service)} in {escape(row.env)} (#{row.id}, asked by {mention(row.requester_id)}) "
        f"{STATE_WORDS[state]}: {escape(row.result or '')}"
    )
