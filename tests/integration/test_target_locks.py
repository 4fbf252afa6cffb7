"""Target locks at run start and run end, on SQLite and PostgreSQL, through the real engine.

The refusal when a request is *created* is tested elsewhere; these are the cases that only show
at the start of a run (two requests approved before either started) and at its end (a failed
run must not leave the target locked through the incident).
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from bot.audit.events import Actor, EventType
from bot.catalog.catalog import Catalog, load_catalog
from bot.requests.approvals import approve
from bot.requests.builtins import BUILTIN_SPECS
from bot.requests.invocation import Invocation
from bot.runs.claims import Admission, Claimed, NotStarted, claim, held_by_text
from bot.serve.wiring import OpsbotCore
from bot.store import locks as lock_store
from bot.store import requests as request_store
from bot.store.database import Database
from bot.store.migrate import upgrade
from bot.store.models import AuditEventRow, RequestRow, TargetLockRow
from bot.store.states import RequestState
from tests import doubles as core
from tests.doubles import TOUCH_RUNBOOK, FakeClock, RecordingReplier

REQUESTER = Actor("U0REQ", "requester")
APPROVER = Actor("U0A00", "approver0")


def approved_touch(app: OpsbotCore, clock: FakeClock, value: str) -> RequestRow:
    """A touch request, approved but not started (as when the run pool is busy)."""
    reply = RecordingReplier()
    app.front_door.handle_command(Invocation(REQUESTER, "C0OPS", f"touch svc {value} in production"), reply)
    assert not reply.messages, reply.last
    with app.database.reading() as session:
        row = session.scalars(select(RequestRow).order_by(RequestRow.id.desc())).first()
    assert row is not None and row.state == RequestState.PENDING_APPROVAL
    shown = f"{row.id}:{row.params_hash[:16]}:{row.plan_hash[:16]}"
    assert approve(app.database, app.groups, request_id=row.id, actor=APPROVER, shown=shown, now=clock()).approved_now
    return row


def stored(app: OpsbotCore, request_id: int) -> RequestRow:
    with app.database.reading() as session:
        row = session.get(RequestRow, request_id)
    assert row is not None
    return row


def lock_on_svc(app: OpsbotCore, clock: FakeClock) -> TargetLockRow | None:
    with app.database.reading() as session:
        return lock_store.current(session, service="svc", env="production", now=clock())


def audit_rows(app: OpsbotCore, request_id: int, event: EventType) -> list[AuditEventRow]:
    with app.database.reading() as session:
        query = select(AuditEventRow).where(AuditEventRow.request_id == request_id, AuditEventRow.event == str(event))
        return list(session.scalars(query))


def events(app: OpsbotCore, request_id: int) -> list[str]:
    with app.database.reading() as session:
        query = select(AuditEventRow.event).where(AuditEventRow.request_id == request_id).order_by(AuditEventRow.seq)
        return list(session.scalars(query))


def test_two_approved_deploys_of_one_target_never_run_at_once(app: OpsbotCore, clock: FakeClock) -> None:
    first = approved_touch(app, clock, "v2")
    second = approved_touch(app, clock, "v3")
    core.STATE.release.clear()  # the first run holds the target until we let it go
    app.engine.submit(first.id)
    assert core.STATE.started.wait(timeout=30), "the first run never started"
    holder = lock_on_svc(app, clock)
    assert holder is not None and holder.request_id == first.id and holder.kind == "run"

    refused = app.engine.start(second.id)  # what the approval click does; it must not start
    assert refused is not None, "the second run started while the first held the target"
    assert refused.state == RequestState.NOT_STARTED
    assert refused.result == (
        f"svc/production is locked by request #{first.id} (touch by requester, just now)."
        " Nothing was changed; request again when it is free."
    )
    assert core.STATE.runs == 1, "the second run must not start while the first holds the target"
    assert EventType.NOT_STARTED in events(app, second.id)
    assert EventType.STARTED not in events(app, second.id)

    core.STATE.release.set()
    assert app.wait_idle(timeout=30)
    assert stored(app, first.id).state == RequestState.SUCCEEDED
    assert core.STATE.value == "v2", "only the first request changed the target"
    assert lock_on_svc(app, clock) is None, "a finished run gives the target back"


def test_a_failed_run_releases_its_lock(app: OpsbotCore, clock: FakeClock) -> None:
    core.STATE.fail_with = "the disk is full"
    failed = approved_touch(app, clock, "v2")
    assert app.engine.execute(failed.id) == RequestState.FAILED
    assert "the disk is full" in (stored(app, failed.id).result or "")
    assert lock_on_svc(app, clock) is None, "the target must not stay locked through the incident"

    core.STATE.fail_with = None
    retry = approved_touch(app, clock, "v3")
    assert app.engine.execute(retry.id) == RequestState.SUCCEEDED
    assert core.STATE.value == "v3"


def test_a_run_lock_lasts_the_runbook_timeout_plus_a_margin(app: OpsbotCore, clock: FakeClock) -> None:
    row = approved_touch(app, clock, "v2")
    core.STATE.release.clear()
    app.engine.submit(row.id)
    assert core.STATE.started.wait(timeout=30)
    holder = lock_on_svc(app, clock)
    assert holder is not None
    # touch.yaml: timeout 2m; the lock outlives it by five minutes so a slow finish still holds it.
    assert holder.expires_at == clock() + timedelta(minutes=7)
    assert (holder.holder_id, holder.holder_name, holder.runbook) == ("U0REQ", "requester", "touch")
    core.STATE.release.set()
    assert app.wait_idle(timeout=30)


# --- The store's lock primitives, on both databases.


def take(
    database: Database, now: datetime, *, holder: str = "alice", kind: str = "manual", request_id: int | None = None, minutes: int = 30
) -> TargetLockRow | None:
    with database.transaction() as session:
        return lock_store.try_acquire(
            session, service="checkout", env="production", kind=kind, holder_id=f"U0{holder.upper()}", holder_name=holder,
            now=now, expires_at=now + timedelta(minutes=minutes), request_id=request_id, runbook="deploy", reason=f"{holder} works",
        )  # fmt: skip


def test_a_held_lock_refuses_the_next_taker_and_names_its_holder(database: Database, clock: FakeClock) -> None:
    now = clock()
    assert take(database, now) is None
    holder = take(database, now + timedelta(minutes=1), holder="bob")
    assert holder is not None
    assert (holder.holder_name, holder.kind, holder.reason, holder.acquired_at) == ("alice", "manual", "alice works", now)


def test_a_lock_ends_at_its_exact_expiry_instant(database: Database, clock: FakeClock) -> None:
    now = clock()
    take(database, now, minutes=30)
    end = now + timedelta(minutes=30)
    just_before = end - timedelta(microseconds=1)
    with database.reading() as session:
        assert lock_store.current(session, service="checkout", env="production", now=just_before) is not None
        assert lock_store.current(session, service="checkout", env="production", now=end) is None
        assert [row.holder_name for row in lock_store.all_locks(session, just_before)] == ["alice"]
        assert lock_store.all_locks(session, end) == []
    assert take(database, just_before, holder="bob") is not None, "still alice's a microsecond before the end"
    assert take(database, end, holder="bob") is None, "an expired lock (a crashed holder) does not block"
    with database.reading() as session:
        row = lock_store.current(session, service="checkout", env="production", now=end)
    assert row is not None and row.holder_name == "bob"


def test_all_locks_lists_live_locks_by_service_then_env(database: Database, clock: FakeClock) -> None:
    now = clock()
    with database.transaction() as session:
        for service, env in [("search", "staging"), ("checkout", "staging"), ("checkout", "production")]:
            lock_store.try_acquire(
                session,
                service=service,
                env=env,
                kind="manual",
                holder_id="U0A",
                holder_name="a",
                now=now,
                expires_at=now + timedelta(hours=1),
            )
    with database.reading() as session:
        listed = [(row.service, row.env) for row in lock_store.all_locks(session, now)]
    assert listed == [("checkout", "production"), ("checkout", "staging"), ("search", "staging")]


def test_a_run_releases_only_its_own_lock(database: Database, clock: FakeClock) -> None:
    now = clock()
    take(database, now, kind="run", request_id=7)
    with database.transaction() as session:
        assert lock_store.release_for_request(session, service="checkout", env="production", request_id=8) is False
        assert lock_store.release_for_request(session, service="search", env="production", request_id=7) is False
        assert lock_store.release_for_request(session, service="checkout", env="staging", request_id=7) is False
    with database.reading() as session:
        assert lock_store.current(session, service="checkout", env="production", now=now) is not None
    with database.transaction() as session:
        assert lock_store.release_for_request(session, service="checkout", env="production", request_id=7) is True
    with database.reading() as session:
        assert lock_store.current(session, service="checkout", env="production", now=now) is None


def test_unlock_removes_a_manual_lock_but_never_a_run_lock(database: Database, clock: FakeClock) -> None:
    now = clock()
    take(database, now, kind="run", request_id=7)
    with database.transaction() as session:
        assert lock_store.release_manual(session, service="checkout", env="production") is None
        assert lock_store.release_manual(session, service="search", env="production") is None
    with database.reading() as session:
        assert lock_store.current(session, service="checkout", env="production", now=now) is not None
    with database.transaction() as session:
        assert lock_store.release_for_request(session, service="checkout", env="production", request_id=7)
    take(database, now)
    with database.transaction() as session:
        removed = lock_store.release_manual(session, service="checkout", env="production")
        assert removed is not None and removed.holder_name == "alice"
    with database.reading() as session:
        assert lock_store.current(session, service="checkout", env="production", now=now) is None


# --- claim: approved → running and the lock, in one transaction, or not started with why.

LEASE = timedelta(seconds=30)


def claim_now(
    app: OpsbotCore, clock: FakeClock, request_id: int, *, catalog: Catalog | None = None, admission: Admission | None = None
) -> object:
    return claim(
        app.database, catalog or app.catalog, request_id=request_id, runner_id="runner-a", lease=LEASE, admission=admission, now=clock()
    )


def test_a_claim_starts_the_request_once_with_its_lease(app: OpsbotCore, clock: FakeClock) -> None:
    row = approved_touch(app, clock, "v2")
    claimed = claim_now(app, clock, row.id)
    assert isinstance(claimed, Claimed)
    assert (claimed.row.state, claimed.row.runner_id, claimed.row.started_at) == (RequestState.RUNNING, "runner-a", clock())
    assert claimed.row.lease_expires_at == clock() + LEASE
    assert claimed.runbook.name == "touch" and [step.spec.title for step in claimed.steps] == ["Touch"]
    assert claimed.approvers == ((APPROVER.user_id, APPROVER.name),), "the run knows who approved (a gitops commit names them)"
    assert claim_now(app, clock, row.id) is None, "a second claim of a running request is not ours"
    assert claim_now(app, clock, 999) is None
    assert events(app, row.id).count(EventType.STARTED) == 1
    [started] = audit_rows(app, row.id, EventType.STARTED)
    assert (started.outcome, started.actor_name) == ("started", "opsbot")
    assert '"runner":"runner-a"' in started.details


def test_a_pending_request_is_not_claimed(app: OpsbotCore, clock: FakeClock) -> None:
    app.front_door.handle_command(Invocation(REQUESTER, "C0OPS", "touch svc v2 in production"), RecordingReplier())
    with app.database.reading() as session:
        row = session.scalars(select(RequestRow)).one()
    asked: list[int] = []

    def admission(request: RequestRow, approvers: Sequence[str]) -> str | None:
        asked.append(request.id)
        return "must not be asked"

    assert claim_now(app, clock, row.id, admission=admission) is None
    assert asked == [], "the policy is asked again only for an approved request"
    assert stored(app, row.id).state == RequestState.PENDING_APPROVAL


def test_the_policy_asked_again_at_the_start_can_refuse_it(app: OpsbotCore, clock: FakeClock) -> None:
    row = approved_touch(app, clock, "v2")
    asked: list[list[str]] = []

    def frozen(request: RequestRow, approvers: Sequence[str]) -> str | None:
        asked.append(list(approvers))
        return "production is frozen."

    refused = claim_now(app, clock, row.id, admission=frozen)
    assert isinstance(refused, NotStarted)
    assert asked == [["U0A00"]]
    assert (refused.row.state, refused.row.finished_at, refused.row.lease_expires_at) == (RequestState.NOT_STARTED, clock(), None)
    assert refused.row.result == "the policy no longer allows it: production is frozen. Nothing was changed."
    assert lock_on_svc(app, clock) is None and core.STATE.runs == 0
    assert events(app, row.id)[-1] == EventType.NOT_STARTED
    [not_started] = audit_rows(app, row.id, EventType.NOT_STARTED)
    assert not_started.outcome == "not_started"
    assert "the policy no longer allows it: production is frozen." in not_started.details


def test_a_runbook_or_target_gone_from_the_catalog_is_not_started(app: OpsbotCore, clock: FakeClock) -> None:
    row = approved_touch(app, clock, "v2")
    without_runbook = dataclasses.replace(app.catalog, runbooks={})
    refused = claim_now(app, clock, row.id, catalog=without_runbook)
    assert isinstance(refused, NotStarted)
    assert refused.row.result == "the runbook 'touch' no longer exists; nothing was changed"

    other = approved_touch(app, clock, "v3")
    services = {name: service for name, service in app.catalog.config.services.items() if name != "svc"}
    without_target = dataclasses.replace(app.catalog, config=app.catalog.config.model_copy(update={"services": services}))
    refused = claim_now(app, clock, other.id, catalog=without_target)
    assert isinstance(refused, NotStarted)
    assert refused.row.result == "svc/production is no longer in the catalog; nothing was changed"
    assert lock_on_svc(app, clock) is None


def test_a_person_holding_the_target_is_named_at_the_start(app: OpsbotCore, clock: FakeClock) -> None:
    row = approved_touch(app, clock, "v2")
    with app.database.transaction() as session:
        lock_store.try_acquire(
            session, service="svc", env="production", kind="manual", holder_id="U0ALICE", holder_name="alice",
            now=clock() - timedelta(minutes=3), expires_at=clock() + timedelta(minutes=30), reason="db migration",
        )  # fmt: skip
    refused = claim_now(app, clock, row.id)
    assert isinstance(refused, NotStarted)
    assert refused.row.result == (
        "svc/production is locked by alice (3 min ago, until 12:30 UTC): db migration. Nothing was changed; request again when it is free."
    )


def test_a_lock_taken_without_a_runbook_or_reason_shows_neither(database: Database, clock: FakeClock) -> None:
    with database.transaction() as session:
        lock_store.try_acquire(
            session, service="checkout", env="production", kind="manual", holder_id="U0ALICE", holder_name="alice",
            now=clock(), expires_at=clock() + timedelta(hours=1),
        )  # fmt: skip
    with database.reading() as session:
        row = lock_store.current(session, service="checkout", env="production", now=clock())
    assert row is not None and (row.runbook, row.reason, row.request_id) == ("", "", None)


def test_taking_a_lock_clears_only_that_targets_expired_row(database: Database, clock: FakeClock) -> None:
    then = clock() - timedelta(hours=2)
    with database.transaction() as session:
        for service, env in [("checkout", "staging"), ("search", "production"), ("checkout", "production")]:
            lock_store.try_acquire(
                session, service=service, env=env, kind="manual", holder_id="U0OLD", holder_name="old", now=then,
                expires_at=then + timedelta(minutes=30),
            )  # fmt: skip
    assert take(database, clock()) is None
    with database.reading() as session:
        left = {(row.service, row.env, row.holder_name) for row in session.scalars(select(TargetLockRow))}
    assert left == {("checkout", "staging", "old"), ("search", "production", "old"), ("checkout", "production", "alice")}


def test_held_by_text_names_a_person_without_a_reason_and_a_run_by_its_request() -> None:
    now = FakeClock()()
    person = TargetLockRow(
        service="svc", env="production", kind="manual", request_id=12, runbook="", holder_id="U0ALICE", holder_name="alice",
        reason="", acquired_at=now - timedelta(hours=2), expires_at=now + timedelta(minutes=30),
    )  # fmt: skip
    assert held_by_text(person, now) == "svc/production is locked by alice (2 h ago, until 12:30 UTC)."
    run = TargetLockRow(
        service="svc", env="production", kind="run", request_id=12, runbook="touch", holder_id="U0REQ", holder_name="requester",
        reason="", acquired_at=now, expires_at=now + timedelta(minutes=7),
    )  # fmt: skip
    assert held_by_text(run, now) == "svc/production is locked by request #12 (touch by requester, just now)."


def catalog_with(app: OpsbotCore, tmp_path: Path, name: str, runbook: str) -> Catalog:
    """The app's catalog with one runbook file added or replaced, as an edit of the runbooks folder and a reload would give."""
    folder = tmp_path / "edited-runbooks"
    shutil.copytree(tmp_path / "runbooks", folder, dirs_exist_ok=True)
    (folder / f"{name}.yaml").write_text(runbook)
    return load_catalog(tmp_path / "opsbot.yaml", folder, builtins=BUILTIN_SPECS, registry=core.test_registry())


PEEK_RUNBOOK = """\
name: peek
description: Show a note; changes nothing.
usage: peek {service} [in {env}]
parameters:
  service: {type: service}
  env: {type: env}
steps:
  - name: Look
    action: opsbot.note
    args: {text: "looking at {service}"}
timeout: 2m
examples: [peek svc in production]
"""


def approved_peek(app: OpsbotCore, clock: FakeClock) -> int:
    """An approved request of the read-only runbook (stored as intake stores one)."""
    with app.database.transaction() as session:
        row = request_store.create_request(
            session, runbook="peek", service="svc", env="production", target_kind="kubernetes", params={},
            params_hash="p" * 64, plan_hash="q" * 64, state=str(RequestState.APPROVED), requester_id="U0REQ",
            requester_name="requester", channel="C0OPS", created_at=clock(), updated_at=clock(),
        )  # fmt: skip
        return row.id


def test_a_read_only_runbook_never_takes_the_target_lock(app: OpsbotCore, clock: FakeClock, tmp_path: Path) -> None:
    catalog = catalog_with(app, tmp_path, "peek", PEEK_RUNBOOK)
    claimed = claim_now(app, clock, approved_peek(app, clock), catalog=catalog)
    assert isinstance(claimed, Claimed) and [step.spec.title for step in claimed.steps] == ["Look"]
    assert lock_on_svc(app, clock) is None, "a run that changes nothing leaves the target free"

    with app.database.transaction() as session:
        lock_store.try_acquire(
            session, service="svc", env="production", kind="manual", holder_id="U0ALICE", holder_name="alice",
            now=clock(), expires_at=clock() + timedelta(minutes=30), reason="db migration",
        )  # fmt: skip
    looked = claim_now(app, clock, approved_peek(app, clock), catalog=catalog)
    assert isinstance(looked, Claimed), "a look at a locked target is not refused"
    holder = lock_on_svc(app, clock)
    assert holder is not None and holder.holder_name == "alice"


def test_a_runbook_whose_step_no_longer_takes_the_approved_arguments_is_not_started(
    app: OpsbotCore, clock: FakeClock, tmp_path: Path
) -> None:
    row = approved_touch(app, clock, "v2")
    # Edited since the approval: a pause of `{value}` seconds first, which "v2" is not.
    edited = TOUCH_RUNBOOK.replace("steps:\n", 'steps:\n  - name: Settle\n    action: opsbot.wait\n    args: {seconds: "{value}"}\n')
    refused = claim_now(app, clock, row.id, catalog=catalog_with(app, tmp_path, "touch", edited))
    assert isinstance(refused, NotStarted)
    assert refused.row.result == (
        "Step 'Settle': argument seconds: Input should be a valid number, unable to parse string as a number; nothing was changed"
    )
    assert lock_on_svc(app, clock) is None and core.STATE.runs == 0


def test_a_second_read_of_a_lock_in_one_transaction_shows_what_another_committed_meanwhile_on_postgresql(
    postgres_url: str, clock: FakeClock
) -> None:
    """``current`` reads the database, not the row the session already holds from an earlier read.

    On PostgreSQL (READ COMMITTED) each statement sees what other transactions committed before
    it, so a transaction that read the lock once (and still holds that row) and reads it again
    must see the change: here the run that held the target ends and alice locks it, then alice
    unlocks. (SQLite serialises writers and keeps one snapshot per transaction: it cannot happen there.)
    """
    database = Database(postgres_url)
    upgrade(database)
    try:
        now = clock()
        take(database, now, kind="run", request_id=7)
        with database.transaction() as session:
            first = lock_store.current(session, service="checkout", env="production", now=now)
            assert first is not None and (first.kind, first.request_id) == ("run", 7)
            with database.transaction() as other:
                assert lock_store.release_for_request(other, service="checkout", env="production", request_id=7)
            assert take(database, now, holder="alice") is None
            again = lock_store.current(session, service="checkout", env="production", now=now)
            assert again is not None and (again.kind, again.holder_name, again.request_id) == ("manual", "alice", None)
            with database.transaction() as other:
                assert lock_store.release_manual(other, service="checkout", env="production") is not None
            assert lock_store.current(session, service="checkout", env="production", now=now) is None, "alice unlocked meanwhile"
    finally:
        database.dispose()
