"""Faults in what opsbot depends on, mid-run: the Kubernetes API, the Slack Web API, the database.

Each test breaks one dependency while a request is in flight and checks what a person would
notice: the request ends in a clear final state (never ``running`` for ever), someone is told
what happened, and the audit chain still verifies.

- Kubernetes: 500/503s, timeouts and connection resets from the fake API server, on the PATCH
  and while waiting for the rollout. Transient ones are ridden out; persistent ones fail the
  request with a message naming the object and cluster, and roll it back if it changed.
- Slack: 429 with ``Retry-After`` on the approval post, ``ok: false`` on ``chat.update`` and on
  ``chat.postMessage``; the run completes and the audit log has the whole story.
- Database: every PostgreSQL connection of the app killed between steps (the server restarted),
  PostgreSQL refusing the app for a while at the end of a run, and a SQLite file held under
  ``BEGIN EXCLUSIVE`` by another process for longer than a heartbeat.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import sqlite3
import uuid
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import select

from bot.audit.events import Actor, EventType
from bot.backends.kubernetes.rollout_actions import KubernetesRollback
from bot.catalog.catalog import Catalog, load_catalog
from bot.catalog.registry import build_registry
from bot.messages import ButtonAction
from bot.requests.builtins import BUILTIN_SPECS
from bot.requests.invocation import Click, Invocation
from bot.runs.engine import RunnerTiming
from bot.serve.wiring import OpsbotCore, build_core
from bot.settings import Settings
from bot.store import audit as audit_store
from bot.store.migrate import upgrade
from bot.store.models import AuditEventRow, RequestRow
from bot.store.states import FINAL_STATES, RequestState
from fakes.kubernetes import ApiRequest, FakeKubernetesServer
from fakes.slack import FakeSlackApi
from tests.conftest import EXAMPLE_CONFIG, POSTGRES_ADMIN_URL, RUNBOOKS
from tests.doubles import STATE, FakeClock, RecordingNotifier, RecordingReplier
from tests.doubles import test_registry as touch_registry
from tests.integration.slack_support import (
    SLACK_TEST_CONFIG,
    RunningServer,
    latest_message,
    posted_request,
    serve_touch_catalog,
    wait_until,
)
from tests.log_capture import LogRecords, captured_logs

ALICE, BOB = Actor("U0ALICE", "alice"), Actor("U0BOB", "bob")
IMAGE = "registry.example.com/shop/checkout"
DEPLOYMENT = "deployment shop/checkout in cluster demo-staging"
REQUEST_TIMEOUT_SECONDS = 3


def audit_story(app: OpsbotCore, request_id: int) -> list[str]:
    with app.database.reading() as session:
        rows = session.scalars(select(AuditEventRow).where(AuditEventRow.request_id == request_id).order_by(AuditEventRow.seq))
        return [row.event for row in rows if row.event != EventType.STEP_PROGRESS]


def progress_lines(app: OpsbotCore, request_id: int) -> list[str]:
    with app.database.reading() as session:
        rows = session.scalars(
            select(AuditEventRow).where(AuditEventRow.request_id == request_id, AuditEventRow.event == EventType.STEP_PROGRESS)
        )
        return [str(json.loads(row.details).get("message")) for row in rows]


def last_request(app: OpsbotCore) -> RequestRow:
    with app.database.reading() as session:
        row = session.scalars(select(RequestRow).order_by(RequestRow.id.desc())).first()
    assert row is not None
    return row


def assert_chain_verifies_or_is_empty(app: OpsbotCore) -> None:
    assert audit_store.verify(app.database).broken is None


def assert_chain_verifies(app: OpsbotCore) -> None:
    report = audit_store.verify(app.database)
    assert report.broken is None, report.broken
    assert report.rows > 0


# == Kubernetes ===================================================================================


@pytest.fixture
def kube() -> Iterator[FakeKubernetesServer]:
    server = FakeKubernetesServer(tick_seconds=0.02, seconds_per_tick=10.0)
    server.start()
    server.add_deployment(
        cluster="demo-staging", namespace="shop", name="checkout", image=f"{IMAGE}:1.4.1", replicas=3, container="checkout",
        progress_deadline_seconds=60,
    )  # fmt: skip
    yield server
    server.stop()


def fast_catalog(tmp_path: Path, kubeconfig: Path) -> Catalog:
    """The shipped config and runbooks, polling every 50 ms instead of 2 s, with a short API timeout."""
    runbooks = tmp_path / "runbooks"
    shutil.copytree(RUNBOOKS, runbooks)
    deploy = runbooks / "deploy.yaml"
    deploy.write_text(
        deploy.read_text().replace("action: kubernetes.wait_rollout\n", "action: kubernetes.wait_rollout\n    args: {poll_seconds: 0.05}\n")
    )
    registry = build_registry()
    registry.register_rollback(KubernetesRollback(poll_seconds=0.05))
    catalog = load_catalog(EXAMPLE_CONFIG, runbooks, builtins=BUILTIN_SPECS, registry=registry)
    access = catalog.config.kubernetes.model_copy(
        update={"kubeconfig": str(kubeconfig), "request_timeout": timedelta(seconds=REQUEST_TIMEOUT_SECONDS)}
    )
    config = catalog.config.model_copy(update={"kubernetes": access})
    return dataclasses.replace(catalog, config=config)


@pytest.fixture
def kube_app(tmp_path: Path, kube: FakeKubernetesServer, sqlite_url: str) -> Iterator[tuple[OpsbotCore, RecordingNotifier]]:
    catalog = fast_catalog(tmp_path, kube.write_kubeconfig(tmp_path / "kubeconfig", contexts=["demo-staging", "demo-production"]))
    notifier = RecordingNotifier()
    settings = Settings(OPSBOT_DATABASE_URL=sqlite_url, OPSBOT_INSTANCE_ID="faults-test")
    application = build_core(settings, notifier=notifier, catalog=catalog, timing=RunnerTiming(heartbeat_seconds=0.05))
    upgrade(application.database)
    yield application, notifier
    application.close()


def deploy(app: OpsbotCore, version: str) -> tuple[RequestRow, RecordingReplier]:
    reply = RecordingReplier()
    app.front_door.handle_command(Invocation(ALICE, "C0OPS", f"deploy checkout {version} to staging"), reply)
    assert app.wait_idle(timeout=60)
    return last_request(app), reply


def image(kube: FakeKubernetesServer) -> str:
    return str(kube.deployment("demo-staging", "shop", "checkout")["spec"]["template"]["spec"]["containers"][0]["image"])


def final_title(notifier: RecordingNotifier) -> str:
    request_post = next(post for post in notifier.posts if post.channel == "C0OPS" and post.thread is None)
    return notifier.current[request_post.ref].title or ""


def incident_posts(notifier: RecordingNotifier) -> list[str]:
    return [post.message.text for post in notifier.posts if post.channel == "C0INCIDENT"]


def test_500s_a_timeout_and_a_reset_while_waiting_for_the_rollout_are_ridden_out(
    kube_app: tuple[OpsbotCore, RecordingNotifier], kube: FakeKubernetesServer
) -> None:
    app, notifier = kube_app
    for kind in ("500", "timeout", "reset"):
        kube.inject_fault(kind, method="GET", path_contains="/deployments/checkout", times=1, during_rollout=True)

    row, _ = deploy(app, "1.4.2")

    assert row.state == RequestState.SUCCEEDED, row.result
    assert image(kube) == f"{IMAGE}:1.4.2"
    retried = [line for line in progress_lines(app, row.id) if line.endswith("(retrying)")]
    assert len(retried) == 3 and DEPLOYMENT in retried[0], retried
    assert final_title(notifier).startswith("✅")
    assert audit_story(app, row.id)[-1] == EventType.SUCCEEDED
    assert_chain_verifies(app)


@pytest.mark.parametrize("kind", ["500", "503", "timeout", "reset"])
def test_one_failed_patch_is_retried_and_the_deploy_completes(
    kube_app: tuple[OpsbotCore, RecordingNotifier], kube: FakeKubernetesServer, kind: str
) -> None:
    app, notifier = kube_app
    kube.inject_fault(kind, method="PATCH", path_contains="/deployments/checkout", times=1, during_rollout=True)

    row, _ = deploy(app, "1.4.2")

    assert row.state == RequestState.SUCCEEDED, row.result
    assert image(kube) == f"{IMAGE}:1.4.2"
    real_patches = [r for r in kube.requests if r.method == "PATCH" and "dryRun" not in r.query]
    assert len(real_patches) == 2, "the failed PATCH was sent once more"
    assert any("(retrying)" in line for line in progress_lines(app, row.id))
    assert final_title(notifier).startswith("✅")
    assert_chain_verifies(app)


def test_a_patch_that_keeps_failing_fails_the_deploy_with_a_clear_message_and_changes_nothing(
    kube_app: tuple[OpsbotCore, RecordingNotifier], kube: FakeKubernetesServer
) -> None:
    app, notifier = kube_app
    kube.inject_fault("500", method="PATCH", path_contains="/deployments/checkout", times=None, during_rollout=True)

    row, _ = deploy(app, "1.4.2")

    assert row.state == RequestState.FAILED
    assert DEPLOYMENT in (row.result or "") and "internal error" in (row.result or ""), row.result
    assert image(kube) == f"{IMAGE}:1.4.1"
    story = audit_story(app, row.id)
    assert EventType.ROLLBACK_STARTED not in story, "nothing changed, so there is nothing to roll back"
    assert story[-2:] == [EventType.STEP_FAILED, EventType.FAILED]
    assert final_title(notifier).startswith("❌")
    assert len(incident_posts(notifier)) == 1 and "failed" in incident_posts(notifier)[0]
    assert_chain_verifies(app)


def test_an_api_server_failing_through_the_rollout_fails_the_deploy_and_rolls_it_back(
    kube_app: tuple[OpsbotCore, RecordingNotifier], kube: FakeKubernetesServer
) -> None:
    app, notifier = kube_app
    kube.inject_fault("500", method="GET", path_contains="/deployments/checkout", times=4, during_rollout=True)

    row, _ = deploy(app, "1.4.2")

    assert row.state == RequestState.ROLLED_BACK, row.result
    assert image(kube) == f"{IMAGE}:1.4.1", "the template carries the old image again"
    assert DEPLOYMENT in (row.result or "") and "rolled back" in (row.result or ""), row.result
    assert EventType.ROLLBACK_STARTED in audit_story(app, row.id)
    assert final_title(notifier).startswith("↩️")
    assert len(incident_posts(notifier)) == 1 and "rolled back" in incident_posts(notifier)[0]
    assert_chain_verifies(app)


def test_an_api_server_that_stays_down_fails_the_deploy_and_says_the_rollback_failed_too(
    kube_app: tuple[OpsbotCore, RecordingNotifier], kube: FakeKubernetesServer
) -> None:
    app, notifier = kube_app
    kube.inject_fault("503", method="GET", path_contains="/deployments/checkout", times=None, during_rollout=True)

    row, _ = deploy(app, "1.4.2")

    assert row.state == RequestState.FAILED
    assert "the automatic rollback also failed" in (row.result or ""), row.result
    assert image(kube) == f"{IMAGE}:1.4.2", "the message is honest: the new image is still there"
    assert final_title(notifier).startswith("❌")
    assert len(incident_posts(notifier)) == 1
    assert_chain_verifies(app)


def someone_else_patches(kube: FakeKubernetesServer, patch: Mapping[str, object]) -> None:
    """Another client's strategic merge PATCH of the Deployment (a colleague's kubectl), straight into the fake."""
    answer = kube.handle(
        ApiRequest(
            "PATCH", "/apis/apps/v1/namespaces/shop/deployments/checkout", "demo-staging",
            headers={"content-type": "application/strategic-merge-patch+json"}, body=json.dumps(patch).encode(),
        )
    )  # fmt: skip
    assert answer.status == 200, answer.body


def deployment_calls(kube: FakeKubernetesServer) -> list[str]:
    """What opsbot asked of the Deployment, in order: ``GET``, ``dry-run PATCH``, ``PATCH``."""
    return [
        f"{'dry-run ' if 'dryRun' in request.query else ''}{request.method}"
        for request in kube.requests
        if request.path.endswith("/deployments/checkout")
    ]


def test_a_deploy_reads_the_deployment_once_per_plan_and_not_again_before_its_patch(
    kube_app: tuple[OpsbotCore, RecordingNotifier], kube: FakeKubernetesServer
) -> None:
    app, _ = kube_app

    row, _ = deploy(app, "1.4.2")

    assert row.state == RequestState.SUCCEEDED, row.result
    calls = deployment_calls(kube)
    before_patch = calls[: calls.index("PATCH")]
    assert before_patch == ["GET", "dry-run PATCH"] * 2, "the request's plan, then the run's check; nothing read again before the PATCH"
    assert image(kube) == f"{IMAGE}:1.4.2"


def test_someone_elses_deploy_between_the_plan_check_and_the_patch_is_never_overwritten(
    kube_app: tuple[OpsbotCore, RecordingNotifier], kube: FakeKubernetesServer
) -> None:
    app, notifier = kube_app
    theirs = {"spec": {"template": {"spec": {"containers": [{"name": "checkout", "image": f"{IMAGE}:1.5.0"}]}}}}
    kube.before_next("PATCH", "/deployments/checkout", lambda: someone_else_patches(kube, theirs))

    row, _ = deploy(app, "1.4.2")

    assert row.state == RequestState.NOT_STARTED, row.result
    assert "changed since" in (row.result or "") and "nothing was changed" in (row.result or "").lower(), row.result
    assert image(kube) == f"{IMAGE}:1.5.0", "their image stays: opsbot's PATCH was refused, not applied over it"
    assert EventType.ROLLBACK_STARTED not in audit_story(app, row.id), "opsbot changed nothing, so it undoes nothing"
    assert final_title(notifier).startswith("⛔"), final_title(notifier)
    assert incident_posts(notifier) == [], "a refused start is not an incident"
    assert_chain_verifies(app)


def test_a_harmless_change_between_the_plan_check_and_the_patch_does_not_stop_the_deploy(
    kube_app: tuple[OpsbotCore, RecordingNotifier], kube: FakeKubernetesServer
) -> None:
    app, notifier = kube_app
    kube.before_next("PATCH", "/deployments/checkout", lambda: someone_else_patches(kube, {"metadata": {"labels": {"team": "payments"}}}))

    row, _ = deploy(app, "1.4.2")

    assert row.state == RequestState.SUCCEEDED, row.result
    assert image(kube) == f"{IMAGE}:1.4.2"
    assert kube.deployment("demo-staging", "shop", "checkout")["metadata"]["labels"]["team"] == "payments"
    assert final_title(notifier).startswith("✅")


def test_a_broken_image_after_a_harmless_change_is_rolled_back_to_what_ran_before_the_patch(
    kube_app: tuple[OpsbotCore, RecordingNotifier], kube: FakeKubernetesServer
) -> None:
    app, notifier = kube_app
    kube.before_next("PATCH", "/deployments/checkout", lambda: someone_else_patches(kube, {"metadata": {"labels": {"team": "payments"}}}))

    row, _ = deploy(app, "1.4.3-broken")

    assert row.state == RequestState.ROLLED_BACK, row.result
    assert image(kube) == f"{IMAGE}:1.4.1", "the template carries the image from before the PATCH again"
    assert final_title(notifier).startswith("↩️")
    assert_chain_verifies(app)


# == Slack ========================================================================================

REQUESTER, APPROVER = "U0REQ", "U0A00"
TOUCH_STORY = [
    EventType.COMMAND_RECEIVED, EventType.APPROVAL_REQUESTED, EventType.APPROVAL_GIVEN, EventType.APPROVED, EventType.STARTED,
    EventType.STEP_STARTED, EventType.STEP_FINISHED, EventType.SUCCEEDED,
]  # fmt: skip


@pytest.fixture
def server(slack: FakeSlackApi, tmp_path: Path, sqlite_url: str) -> Iterator[RunningServer]:
    with serve_touch_catalog(slack, tmp_path, sqlite_url) as running:
        yield running
        running.wait_idle()


def request_story(server: RunningServer, request_id: int = 1) -> list[str]:
    return audit_story(server.opsbot, request_id)


def request_row(server: RunningServer, request_id: int = 1) -> RequestRow:
    with server.opsbot.database.reading() as session:
        row = session.get(RequestRow, request_id)
    assert row is not None
    return row


def succeeded_message_text(slack: FakeSlackApi, containing: str) -> str:
    def finished() -> str | None:
        text = latest_message(slack, containing=containing).text
        return text if "succeeded" in text else None

    return slack.wait_for(finished, 15, what=f"{containing!r} to end succeeded")


def test_a_429_on_the_approval_post_is_retried_after_retry_after_and_the_request_completes(
    server: RunningServer, slack: FakeSlackApi
) -> None:
    slack.rate_limit("chat.postMessage", times=1, retry_after=1)
    server.slack_user(slack, REQUESTER).command("touch svc v2 in production")
    message = posted_request(server.opsbot, slack, "touch svc v2")

    server.slack_user(slack, APPROVER).click(message, ButtonAction.APPROVE)

    assert succeeded_message_text(slack, "touch svc v2")
    limited, posted = slack.calls_to("chat.postMessage")[:2]
    assert (limited.status, posted.status) == (429, 200) and posted.at - limited.at >= 1.0
    server.wait_idle()
    assert request_story(server) == TOUCH_STORY
    assert (STATE.runs, STATE.value) == (1, "v2")
    assert_chain_verifies(server.opsbot)


def run_ended(server: RunningServer) -> RequestState | None:
    """The request's final state once its run is over and has told the board (None before)."""
    state = RequestState(request_row(server).state)
    if state not in FINAL_STATES:
        return None
    assert server.opsbot.engine.wait_idle(timeout=10), "the run recorded its end but did not finish"
    return state


@contextlib.contextmanager
def first_update_in_flight(server: RunningServer, slack: FakeSlackApi, text: str) -> Iterator[None]:
    """Approve ``text``'s request with Slack holding every ``chat.update``; the block runs once the run's first redraw waits on Slack.

    The run is held in its step until then, so what follows (the rest of the run) happens while
    that redraw is in flight: no clock involved.
    """
    message = posted_request(server.opsbot, slack, text)
    slack.hold("chat.update")
    STATE.release.clear()
    server.slack_user(slack, APPROVER).click(message, ButtonAction.APPROVE)
    assert STATE.started.wait(10), "the run never reached its step"
    slack.wait_for(lambda: [call for call in slack.calls_to("chat.update") if call.status is None], what="a redraw waiting on Slack")
    STATE.release.set()
    yield


def test_a_slack_that_hangs_on_message_updates_never_holds_the_run_back(server: RunningServer, slack: FakeSlackApi) -> None:
    server.slack_user(slack, REQUESTER).command("touch svc v2 in production")
    message = posted_request(server.opsbot, slack, "touch svc v2")
    slack.hold("chat.update")

    server.slack_user(slack, APPROVER).click(message, ButtonAction.APPROVE)

    assert wait_until(lambda: run_ended(server), what="the run to end while Slack hangs") == RequestState.SUCCEEDED
    assert (STATE.runs, STATE.value) == (1, "v2")
    updates = slack.calls_to("chat.update")
    assert updates and all(call.status is None for call in updates), "every redraw so far still waits for Slack"
    slack.release("chat.update")
    assert succeeded_message_text(slack, "touch svc v2")
    server.wait_idle()
    assert request_story(server) == TOUCH_STORY


def test_redraws_queued_behind_a_slow_slack_become_one_and_the_final_state_is_drawn_last(
    server: RunningServer, slack: FakeSlackApi
) -> None:
    server.slack_user(slack, REQUESTER).command("touch svc v2 in production")
    STATE.fail_with = "the value was refused"

    with first_update_in_flight(server, slack, "touch svc v2"):
        assert wait_until(lambda: run_ended(server), what="the run to end") == RequestState.FAILED
        slack.release("chat.update")

    final = slack.wait_for(lambda: "failed" in latest_message(slack, containing="touch svc v2").text, what="the message to say failed")
    server.wait_idle()
    assert final and "failed" in latest_message(slack, containing="touch svc v2").text, "nothing older was drawn after the end"
    running, ended = [call.params["text"] for call in slack.calls_to("chat.update")]
    assert "running" in str(running) and "failed" in str(ended), "the step's redraws waited and were replaced by the end"
    assert len(slack.messages("C0INCIDENT")) == 1, "a failure that touched the service is still announced"


def test_message_not_found_on_an_update_mid_run_does_not_stop_the_run(server: RunningServer, slack: FakeSlackApi) -> None:
    server.slack_user(slack, REQUESTER).command("touch svc v2 in production")
    slack.fail_next("chat.update", "message_not_found")

    with first_update_in_flight(server, slack, "touch svc v2"):
        assert wait_until(lambda: run_ended(server), what="the run to end") == RequestState.SUCCEEDED
        slack.release("chat.update")

    assert succeeded_message_text(slack, "touch svc v2")
    server.wait_idle()
    assert [call.error for call in slack.calls_to("chat.update")] == ["message_not_found", None], "the end is drawn after the failure"
    assert request_story(server) == TOUCH_STORY
    assert (STATE.runs, STATE.value) == (1, "v2")
    assert_chain_verifies(server.opsbot)


def test_channel_not_found_for_a_request_without_approval_still_runs_it_and_tells_the_requester(
    slack: FakeSlackApi, tmp_path: Path, sqlite_url: str
) -> None:
    no_approval = SLACK_TEST_CONFIG.replace("      approvals: {count: 1, approvers: [approvers], expires_in: 10m}\n", "")
    with serve_touch_catalog(slack, tmp_path, sqlite_url, config=no_approval) as server:
        slack.fail_next("chat.postMessage", "channel_not_found")

        server.slack_user(slack, REQUESTER).command("touch svc v2 in production")
        answer_and_story_of_an_unposted_run(server, slack)


def answer_and_story_of_an_unposted_run(server: RunningServer, slack: FakeSlackApi) -> None:

    answer = slack.wait_for(
        lambda: [e.text for e in slack.ephemerals(user=REQUESTER) if "could not post" in e.text], what="the requester to be told"
    )
    assert "/ops show 1" in answer[-1]
    server.wait_idle()
    assert request_row(server).state == RequestState.SUCCEEDED
    assert request_story(server) == [
        EventType.COMMAND_RECEIVED, EventType.APPROVED, EventType.STARTED, EventType.STEP_STARTED, EventType.STEP_FINISHED,
        EventType.SUCCEEDED,
    ]  # fmt: skip
    assert_chain_verifies(server.opsbot)


# == the database =================================================================================

TWO_STEP_RUNBOOK = """\
name: touch
description: Set the test value, then report.
usage: touch {service} {value} [in {env}]
parameters:
  service: {type: service}
  value: {type: string, pattern: "[a-z0-9.]{1,20}"}
  env: {type: env}
steps:
  - name: Touch
    action: test.touch
    args: {value: "{value}"}
  - name: Note
    action: opsbot.note
    args: {text: "touched {value}"}
timeout: 2m
examples: [touch svc v2 in production]
"""
CONFIG = """\
users: {U0ALICE: alice, U0BOB: bob}
groups: {requesters: [U0ALICE], approvers: [U0BOB]}
services:
  svc:
    default_env: production
    environments:
      production:
        kubernetes: {context: none, namespace: ns, deployment: svc}
policy:
  rules:
    - runbooks: [touch]
      envs: [production]
      allow: {groups: [requesters]}
"""
LEASE = timedelta(seconds=10)
SHORT_LEASE = timedelta(seconds=1)


@pytest.fixture
def log() -> Iterator[LogRecords]:
    with captured_logs() as records:
        yield records


def two_step_app(tmp_path: Path, database_url: str, clock: FakeClock, *, lease: timedelta = LEASE) -> tuple[OpsbotCore, RecordingNotifier]:
    STATE.reset()
    (tmp_path / "runbooks").mkdir(exist_ok=True)
    (tmp_path / "runbooks" / "touch.yaml").write_text(TWO_STEP_RUNBOOK)
    (tmp_path / "opsbot.yaml").write_text(CONFIG)
    catalog = load_catalog(tmp_path / "opsbot.yaml", tmp_path / "runbooks", builtins=BUILTIN_SPECS, registry=touch_registry())
    notifier = RecordingNotifier()
    settings = Settings(OPSBOT_DATABASE_URL=database_url, OPSBOT_INSTANCE_ID="faults-db")
    timing = RunnerTiming(lease=lease, heartbeat_seconds=0.05, lease_renew_every=2)
    app = build_core(settings, notifier=notifier, catalog=catalog, clock=clock, timing=timing)
    upgrade(app.database)
    return app, notifier


@contextlib.contextmanager
def held_in_its_first_step(app: OpsbotCore) -> Iterator[None]:
    """Start ``touch svc v2`` and hold it inside its first step until the block ends."""
    STATE.release.clear()
    app.front_door.handle_command(Invocation(ALICE, "C0OPS", "touch svc v2"), RecordingReplier())
    assert STATE.started.wait(10), "the run never reached its first step"
    try:
        yield
    finally:
        STATE.release.set()


def with_application_name(url: str, name: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}application_name={name}"


def terminate_backends(application_name: str) -> int:
    """Kill every PostgreSQL session of this test's app (and no other worker's), as a restart would."""
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s AND pid <> pg_backend_pid()",
            (application_name,),
        ).fetchone()
    return int(killed[0]) if killed else 0


@pytest.fixture
def app_role_url(postgres_url: str) -> Iterator[tuple[str, str, str]]:
    """(url, role, application_name): the test's schema reached as its own role, so it alone can be locked out."""
    role = f"opsbot_fault_{uuid.uuid4().hex[:10]}"
    application_name = f"{role}_app"
    schema = postgres_url.rsplit("search_path%3D", 1)[1]
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{role}" LOGIN')
        admin.execute(f'ALTER SCHEMA "{schema}" OWNER TO "{role}"')
    url = postgres_url.replace("postgresql+psycopg://postgres@", f"postgresql+psycopg://{role}@", 1)
    assert role in url, url
    yield with_application_name(url, application_name), role, application_name
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'ALTER ROLE "{role}" LOGIN')
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,))
        admin.execute(f'ALTER SCHEMA "{schema}" OWNER TO postgres')
        admin.execute(f'REASSIGN OWNED BY "{role}" TO postgres')
        admin.execute(f'DROP OWNED BY "{role}"')
        admin.execute(f'DROP ROLE "{role}"')


def set_login(role: str, allowed: bool) -> None:
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'ALTER ROLE "{role}" {"LOGIN" if allowed else "NOLOGIN"}')


@pytest.mark.postgres
def test_a_postgresql_restart_between_steps_is_ridden_out_and_the_run_succeeds(tmp_path: Path, postgres_url: str) -> None:
    application_name = f"opsbot_fault_{uuid.uuid4().hex[:10]}"
    app, notifier = two_step_app(tmp_path, with_application_name(postgres_url, application_name), FakeClock())
    try:
        with held_in_its_first_step(app):
            assert terminate_backends(application_name) >= 1, "the app had sessions open mid-run"
        assert app.wait_idle(timeout=30)

        row = last_request(app)
        assert row.state == RequestState.SUCCEEDED, row.result
        assert audit_story(app, row.id)[-3:] == [EventType.STEP_STARTED, EventType.STEP_FINISHED, EventType.SUCCEEDED]
        assert (notifier.current[notifier.posts[0].ref].title or "").startswith("✅")
        assert_chain_verifies(app)
    finally:
        app.close()


@pytest.mark.postgres
def test_postgresql_refusing_connections_for_a_moment_at_the_end_of_a_run_still_records_its_success(
    tmp_path: Path, app_role_url: tuple[str, str, str], log: LogRecords
) -> None:
    url, role, application_name = app_role_url
    app, notifier = two_step_app(tmp_path, url, FakeClock())
    try:
        with held_in_its_first_step(app):
            set_login(role, allowed=False)
            terminate_backends(application_name)
        wait_until(lambda: log.saw("the database is unreachable"), what="the run to meet the outage")
        set_login(role, allowed=True)
        assert app.wait_idle(timeout=30)

        row = last_request(app)
        assert row.state == RequestState.SUCCEEDED, row.result
        assert audit_story(app, row.id) == [
            EventType.COMMAND_RECEIVED, EventType.APPROVED, EventType.STARTED, EventType.STEP_STARTED, EventType.STEP_FINISHED,
            EventType.STEP_STARTED, EventType.STEP_FINISHED, EventType.SUCCEEDED,
        ]  # fmt: skip
        assert (notifier.current[notifier.posts[0].ref].title or "").startswith("✅")
        assert_chain_verifies(app)
    finally:
        app.close()


@pytest.mark.postgres
def test_postgresql_gone_for_longer_than_a_lease_ends_the_run_interrupted_never_running_for_ever(
    tmp_path: Path, app_role_url: tuple[str, str, str], log: LogRecords
) -> None:
    url, role, application_name = app_role_url
    clock = FakeClock()
    app, notifier = two_step_app(tmp_path, url, clock, lease=SHORT_LEASE)
    try:
        with held_in_its_first_step(app):
            set_login(role, allowed=False)
            terminate_backends(application_name)
        assert app.wait_idle(timeout=30), "the run gives up once its lease is over"
        assert log.saw("the database is unreachable")
        set_login(role, allowed=True)
        assert last_request(app).state == RequestState.RUNNING, "nothing could record the end while the database was away"

        clock.advance(SHORT_LEASE * 2)
        interrupted = app.engine.recover()
        assert app.wait_idle(timeout=10)

        row = last_request(app)
        assert interrupted == [row.id] and row.state == RequestState.INTERRUPTED
        assert "check it with `status`" in (row.result or "")
        assert (notifier.current[notifier.posts[0].ref].title or "").startswith("⚠️")
        assert audit_story(app, row.id)[-1] == EventType.INTERRUPTED
        assert_chain_verifies(app)
    finally:
        app.close()


@pytest.mark.postgres
def test_a_command_or_click_while_postgresql_is_down_gets_a_clear_answer_not_silence(
    tmp_path: Path, app_role_url: tuple[str, str, str]
) -> None:
    url, role, application_name = app_role_url
    app, _ = two_step_app(tmp_path, url, FakeClock())
    reply, clicked = RecordingReplier(), RecordingReplier()
    try:
        set_login(role, allowed=False)
        terminate_backends(application_name)

        app.front_door.handle_command(Invocation(ALICE, "C0OPS", "touch svc v2", delivery="d" * 64), reply)
        app.front_door.handle_click(Click(BOB, "C0OPS", ButtonAction.APPROVE, "1:x:y", delivery="e" * 64), clicked)

        for answer in (reply.last, clicked.last):
            assert "Something went wrong on our side" in answer and "Nothing further was changed" in answer
        assert STATE.runs == 0
        set_login(role, allowed=True)
        assert_chain_verifies_or_is_empty(app)
    finally:
        set_login(role, allowed=True)
        app.close()


def test_a_sqlite_file_locked_past_a_heartbeat_delays_the_run_but_it_succeeds(tmp_path: Path, sqlite_url: str) -> None:
    app, notifier = two_step_app(tmp_path, sqlite_url, FakeClock())
    other = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), timeout=30, isolation_level=None)
    try:
        with held_in_its_first_step(app):
            other.execute("BEGIN EXCLUSIVE")
        wait_until(lambda: STATE.value == "v2", what="the first step to finish while the file is locked")
        assert not app.wait_idle(timeout=0.5), "the run waits for the lock (several heartbeats)"
        other.execute("ROLLBACK")
        assert app.wait_idle(timeout=30)

        row = last_request(app)
        assert row.state == RequestState.SUCCEEDED, row.result
        assert audit_story(app, row.id)[-3:] == [EventType.STEP_STARTED, EventType.STEP_FINISHED, EventType.SUCCEEDED]
        assert (notifier.current[notifier.posts[0].ref].title or "").startswith("✅")
        assert_chain_verifies(app)
    finally:
        other.close()
        app.close()
