"""Runbooks through the whole core against the fake Kubernetes API server over HTTP.

Operations → policy → plan → approval → runner → kubernetes backend → fake API server,
with the audit log and what a person would see in the channel checked at the end.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.audit.events import Actor
from bot.catalog.catalog import Catalog
from bot.messages import ButtonAction, MessageRef
from bot.requests.invocation import Click, Invocation
from bot.runs.engine import RunnerTiming
from bot.serve.wiring import OpsbotCore, build_core
from bot.settings import Settings
from bot.store import audit as audit_store
from bot.store.migrate import upgrade
from bot.store.models import AuditEventRow, RequestRow
from bot.store.states import RequestState
from fakes.kubernetes import FakeKubernetesServer
from tests.doubles import RecordingNotifier, RecordingReplier
from tests.integration.slack_support import wait_until

ALICE, BOB, DAVE = Actor("U0ALICE", "alice"), Actor("U0BOB", "bob"), Actor("U0DAVE", "dave")
IMAGE = "registry.example.com/shop/checkout"


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[FakeKubernetesServer]:
    server = FakeKubernetesServer(tick_seconds=0.02, seconds_per_tick=10.0)
    server.start()
    for cluster in ("demo-staging", "demo-production"):
        server.add_deployment(
            cluster=cluster, namespace="shop", name="checkout", image=f"{IMAGE}:1.4.1", replicas=3, container="checkout",
            progress_deadline_seconds=60,
        )  # fmt: skip
    yield server
    server.stop()


@pytest.fixture
def app(
    tmp_path: Path, kube: FakeKubernetesServer, example_catalog: Catalog, sqlite_url: str
) -> Iterator[tuple[OpsbotCore, RecordingNotifier]]:
    kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig", contexts=["demo-staging", "demo-production"])
    config = example_catalog.config.model_copy(
        update={"kubernetes": example_catalog.config.kubernetes.model_copy(update={"kubeconfig": str(kubeconfig)})}
    )
    catalog = dataclasses.replace(example_catalog, config=config)
    notifier = RecordingNotifier()
    settings = Settings(OPSBOT_DATABASE_URL=sqlite_url, OPSBOT_INSTANCE_ID="runner-test")
    application = build_core(settings, notifier=notifier, catalog=catalog, timing=RunnerTiming(heartbeat_seconds=0.05))
    upgrade(application.database)
    yield application, notifier
    application.close()


def run(app: OpsbotCore, actor: Actor, text: str) -> RecordingReplier:
    reply = RecordingReplier()
    app.front_door.handle_command(Invocation(actor, "C0OPS", text), reply)
    assert app.wait_idle(timeout=60)
    return reply


def last_request(app: OpsbotCore) -> RequestRow:
    with app.database.reading() as session:
        row = session.scalars(select(RequestRow).order_by(RequestRow.id.desc())).first()
    assert row is not None
    return row


def approve(app: OpsbotCore, row: RequestRow, actor: Actor = BOB) -> RecordingReplier:
    reply = RecordingReplier()
    value = f"{row.id}:{row.params_hash[:16]}:{row.plan_hash[:16]}"
    app.front_door.handle_click(Click(actor, "C0OPS", ButtonAction.APPROVE, value, MessageRef.from_dict(row.message_ref)), reply)
    assert app.wait_idle(timeout=60)
    return reply


def running_request(app: OpsbotCore) -> RequestRow:
    """The request once its run has started (a broken image keeps it running until its deadline)."""

    def running() -> RequestRow | None:
        with app.database.reading() as session:
            return session.scalars(select(RequestRow).where(RequestRow.state == RequestState.RUNNING)).first()

    return wait_until(running, timeout=60, what="a running request")


def image(kube: FakeKubernetesServer, cluster: str = "demo-staging") -> str:
    return str(kube.deployment(cluster, "shop", "checkout")["spec"]["template"]["spec"]["containers"][0]["image"])


def story(app: OpsbotCore, request_id: int) -> list[str]:
    with app.database.reading() as session:
        rows = session.scalars(select(AuditEventRow).where(AuditEventRow.request_id == request_id).order_by(AuditEventRow.seq))
        return [row.event for row in rows if row.event != "step_progress"]


def test_staging_deploy_rolls_out_and_the_audit_log_tells_each_step(
    app: tuple[OpsbotCore, RecordingNotifier], kube: FakeKubernetesServer
) -> None:
    ops, notifier = app
    run(ops, ALICE, "deploy checkout 1.4.2 to staging")
    row = last_request(ops)
    assert row.state == RequestState.SUCCEEDED
    assert image(kube) == f"{IMAGE}:1.4.2"
    assert story(ops, row.id) == [
        "command_received", "approved", "started", "step_started", "step_finished", "step_started", "step_finished", "succeeded",
    ]  # fmt: skip
    final = notifier.current[notifier.posts[0].ref]
    assert final.title is not None and final.title.startswith("✅ #1 deploy checkout 1.4.2")
    assert audit_store.verify(ops.database).broken is None


def test_broken_image_is_rolled_back_automatically(app: tuple[OpsbotCore, RecordingNotifier], kube: FakeKubernetesServer) -> None:
    ops, notifier = app
    run(ops, ALICE, "deploy checkout 1.4.3-broken to staging")
    row = last_request(ops)
    assert row.state == RequestState.ROLLED_BACK
    assert image(kube) == f"{IMAGE}:1.4.1", "the template must carry the old image again"
    assert "ProgressDeadlineExceeded" in (row.result or "") or "timed out progressing" in (row.result or "")
    assert "rolled_back" in story(ops, row.id)
    incident = [post for post in notifier.posts if post.channel == "C0INCIDENT"]
    assert len(incident) == 1 and "rolled back" in incident[0].message.text


def test_a_rolled_back_run_releases_its_lock(app: tuple[OpsbotCore, RecordingNotifier], kube: FakeKubernetesServer) -> None:
    ops, _ = app
    run(ops, ALICE, "deploy checkout 1.4.3-broken to staging")
    assert last_request(ops).state == RequestState.ROLLED_BACK
    after = run(ops, DAVE, "deploy checkout 1.4.2 to staging")
    assert "locked" not in after.last, "the rolled-back run must give the target back"
    assert last_request(ops).state == RequestState.SUCCEEDED
    assert image(kube) == f"{IMAGE}:1.4.2"


def test_production_deploy_waits_for_an_approval_then_runs(app: tuple[OpsbotCore, RecordingNotifier], kube: FakeKubernetesServer) -> None:
    ops, _ = app
    run(ops, ALICE, "deploy checkout 1.4.2 to production")
    row = last_request(ops)
    assert row.state == RequestState.PENDING_APPROVAL
    assert image(kube, "demo-production") == f"{IMAGE}:1.4.1", "nothing may change before the approval"
    assert row.plan[0]["before"] == f"{IMAGE}:1.4.1"
    refused = approve(ops, row, ALICE)
    assert "you cannot approve it" in refused.last
    approve(ops, row, BOB)
    assert last_request(ops).state == RequestState.SUCCEEDED
    assert image(kube, "demo-production") == f"{IMAGE}:1.4.2"


def test_rollback_to_an_explicit_revision(app: tuple[OpsbotCore, RecordingNotifier], kube: FakeKubernetesServer) -> None:
    ops, _ = app
    run(ops, ALICE, "deploy checkout 1.4.2 to staging")
    run(ops, ALICE, "deploy checkout 1.4.3 to staging")
    assert image(kube) == f"{IMAGE}:1.4.3"
    run(ops, ALICE, "rollback checkout in staging to 1")
    row = last_request(ops)
    assert row.state == RequestState.SUCCEEDED, row.result
    assert image(kube) == f"{IMAGE}:1.4.1"
    assert row.plan[0] == {"field": "revision", "before": "3", "after": "1"}


def test_scale_within_and_outside_the_policy_limit(app: tuple[OpsbotCore, RecordingNotifier], kube: FakeKubernetesServer) -> None:
    ops, _ = app
    run(ops, ALICE, "scale checkout 5 in staging")
    assert last_request(ops).state == RequestState.SUCCEEDED
    assert kube.deployment("demo-staging", "shop", "checkout")["spec"]["replicas"] == 5
    denied = run(ops, ALICE, "scale checkout 25 in production")
    assert (
        denied.last == "Denied: replicas 25 is above the production limit of 20 (production scale needs on-call and stays within limits)."
    )
    assert kube.deployment("demo-production", "shop", "checkout")["spec"]["replicas"] == 3


def test_restart_sets_the_restarted_at_annotation(app: tuple[OpsbotCore, RecordingNotifier], kube: FakeKubernetesServer) -> None:
    ops, _ = app
    run(ops, DAVE, "restart checkout in staging")
    assert last_request(ops).state == RequestState.SUCCEEDED
    annotations = kube.deployment("demo-staging", "shop", "checkout")["spec"]["template"]["metadata"].get("annotations", {})
    assert "kubectl.kubernetes.io/restartedAt" in annotations


def test_status_reports_replicas_and_details_privately(app: tuple[OpsbotCore, RecordingNotifier]) -> None:
    ops, notifier = app
    reply = run(ops, DAVE, "status checkout in production")
    said = "\n".join(reply.messages[-1].sections)
    assert "3/3 ready" in said
    assert "registry.example.com/shop/checkout:1.4.1" in said
    assert notifier.posts == [], "no request card"


def test_explicit_lock_refuses_others_with_the_owner_and_reason(
    app: tuple[OpsbotCore, RecordingNotifier], kube: FakeKubernetesServer
) -> None:
    ops, notifier = app
    run(ops, ALICE, 'lock checkout in staging --reason "db migration"')
    assert any("is locked by <@U0ALICE>" in post.message.text for post in notifier.posts)
    refused = run(ops, DAVE, "deploy checkout 1.4.2 to staging")
    assert "checkout/staging is locked by <@U0ALICE>" in refused.last and "db migration" in refused.last
    assert image(kube) == f"{IMAGE}:1.4.1"
    run(ops, ALICE, "unlock checkout in staging")
    run(ops, DAVE, "deploy checkout 1.4.2 to staging")
    assert image(kube) == f"{IMAGE}:1.4.2"


def test_second_deploy_while_one_runs_names_the_running_request(
    app: tuple[OpsbotCore, RecordingNotifier], kube: FakeKubernetesServer
) -> None:
    ops, _ = app
    first = RecordingReplier()
    ops.front_door.handle_command(Invocation(ALICE, "C0OPS", "deploy checkout 1.4.3-broken to staging"), first)
    running = running_request(ops)
    second = RecordingReplier()
    ops.front_door.handle_command(Invocation(DAVE, "C0OPS", "deploy checkout 1.4.2 to staging"), second)
    assert f"checkout/staging is locked by request #{running.id} (deploy by <@U0ALICE>" in second.last
    assert ops.wait_idle(timeout=60)


def test_cancelling_a_running_deploy_stops_it_and_rolls_back(app: tuple[OpsbotCore, RecordingNotifier], kube: FakeKubernetesServer) -> None:
    ops, _ = app
    ops.front_door.handle_command(Invocation(ALICE, "C0OPS", "deploy checkout 1.4.3-broken to staging"), RecordingReplier())
    row = running_request(ops)
    # Cancelled once the new image is set (a cancel before that changes nothing and has nothing to roll back).
    wait_until(lambda: image(kube) == f"{IMAGE}:1.4.3-broken" or None, timeout=60, what="the new image to be set")
    reply = RecordingReplier()
    ops.front_door.handle_command(Invocation(ALICE, "C0OPS", f"cancel {row.id}"), reply)
    assert "Stopping" in reply.last
    assert ops.wait_idle(timeout=60)
    final = last_request(ops)
    assert final.state == RequestState.CANCELLED
    assert (final.result or "").startswith("cancelled by alice") and "rolled back" in (final.result or "")
    assert image(kube) == f"{IMAGE}:1.4.1"


def test_forbidden_names_the_object_and_cluster(app: tuple[OpsbotCore, RecordingNotifier], kube: FakeKubernetesServer) -> None:
    ops, _ = app
    kube.forbid("patch", "deployments", cluster="demo-staging")
    reply = run(ops, ALICE, "deploy checkout 1.4.2 to staging")
    assert "Could not plan `deploy` for checkout/staging" in reply.last
    assert "deployment shop/checkout in cluster demo-staging" in reply.last
    assert "forbidden" in reply.last.lower()


def test_missing_deployment_names_the_object(app: tuple[OpsbotCore, RecordingNotifier], kube: FakeKubernetesServer) -> None:
    ops, _ = app
    reply = run(ops, DAVE, "status search")
    said = "\n".join(reply.messages[-1].sections)
    assert "could not finish" in reply.last
    assert "search" in said and "demo-production" in said, said
