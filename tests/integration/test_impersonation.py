"""Acting as the requester on Kubernetes: the cluster's RBAC decides at plan time, every call impersonated.

The whole core against the fake API server over HTTP; the fake checks the impersonation
headers against its RBAC grants (``fakes/kubernetes/rbac.py``) and answers 403 in
kube-apiserver's words, which opsbot turns into a refusal before anyone is asked to approve.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from bot.audit.events import Actor
from bot.catalog.catalog import Catalog
from bot.catalog.identity import IdentityConfig
from bot.cli.main import main
from bot.messages import ButtonAction, MessageRef
from bot.requests.invocation import Click, Invocation
from bot.runs.engine import RunnerTiming
from bot.serve.wiring import OpsbotCore, build_core
from bot.settings import Settings
from bot.store.migrate import upgrade
from bot.store.models import AuditEventRow, RequestRow
from bot.store.states import RequestState
from fakes.kubernetes import FakeKubernetesServer, Grant, RecordedRequest
from tests.doubles import RecordingNotifier, RecordingReplier

ALICE, BOB, CAROL = Actor("U0ALICE", "alice"), Actor("U0BOB", "bob"), Actor("U0CAROL", "carol")
IMAGE = "registry.example.com/shop/checkout"
PRODUCTION = "demo-production"
READ = ("get", "list", "watch")


@pytest.fixture
def kube() -> Iterator[FakeKubernetesServer]:
    server = FakeKubernetesServer(tick_seconds=0.02, seconds_per_tick=10.0)
    server.start()
    for cluster in ("demo-staging", PRODUCTION):
        server.add_deployment(
            cluster=cluster, namespace="shop", name="checkout", image=f"{IMAGE}:1.4.1", replicas=3, container="checkout",
            progress_deadline_seconds=60,
        )  # fmt: skip
    # What a team writes: developers read production and change staging; on-call changes production.
    server.rbac.grant(Grant("developers-read", READ, ("deployments", "replicasets", "pods"), groups=("opsbot:developers",)))
    server.rbac.grant(
        Grant(
            "developers-staging",
            ("patch",),
            ("deployments", "deployments/scale"),
            groups=("opsbot:developers",),
            clusters=("demo-staging",),
        )
    )
    server.rbac.grant(
        Grant(
            "oncall-deploy", (*READ, "patch"), ("deployments", "deployments/scale", "replicasets", "pods"),
            groups=("opsbot:platform-oncall",), namespaces=("shop",),
        )
    )  # fmt: skip
    yield server
    server.stop()


@pytest.fixture
def ops(
    tmp_path: Path, kube: FakeKubernetesServer, example_catalog: Catalog, sqlite_url: str
) -> Iterator[tuple[OpsbotCore, RecordingNotifier]]:
    kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig", contexts=["demo-staging", PRODUCTION])
    config = example_catalog.config.model_copy(
        update={
            "kubernetes": example_catalog.config.kubernetes.model_copy(update={"kubeconfig": str(kubeconfig)}),
            "identity": IdentityConfig(),
        }
    )
    notifier = RecordingNotifier()
    settings = Settings(OPSBOT_DATABASE_URL=sqlite_url, OPSBOT_INSTANCE_ID="identity-test")
    core = build_core(
        settings,
        notifier=notifier,
        catalog=dataclasses.replace(example_catalog, config=config),
        timing=RunnerTiming(heartbeat_seconds=0.05),
    )
    upgrade(core.database)
    yield core, notifier
    core.close()


def run(core: OpsbotCore, actor: Actor, text: str) -> RecordingReplier:
    reply = RecordingReplier()
    core.front_door.handle_command(Invocation(actor, "C0OPS", text), reply)
    assert core.wait_idle(timeout=60)
    return reply


def last_request(core: OpsbotCore) -> RequestRow | None:
    with core.database.reading() as session:
        return session.scalars(select(RequestRow).order_by(RequestRow.id.desc())).first()


def audit_details(core: OpsbotCore, event: str) -> list[dict[str, Any]]:
    with core.database.reading() as session:
        rows = session.scalars(select(AuditEventRow).where(AuditEventRow.event == event).order_by(AuditEventRow.seq))
        return [{"outcome": row.outcome, **json.loads(row.details)} for row in rows]


def production_image(kube: FakeKubernetesServer) -> str:
    return str(kube.deployment(PRODUCTION, "shop", "checkout")["spec"]["template"]["spec"]["containers"][0]["image"])


def calls_to(kube: FakeKubernetesServer, cluster: str) -> list[RecordedRequest]:
    return [request for request in kube.requests if request.cluster == cluster]


def test_a_developer_is_refused_at_plan_time_in_the_clusters_words_before_any_approval_message(
    ops: tuple[OpsbotCore, RecordingNotifier], kube: FakeKubernetesServer
) -> None:
    core, notifier = ops
    reply = run(core, ALICE, "deploy checkout 1.4.2 to production")
    assert "Kubernetes says you (slack:U0ALICE, groups opsbot:developers) may not patch deployments in namespace shop" in reply.last
    assert (
        'User \\"slack:U0ALICE\\" cannot patch resource \\"deployments\\"' in reply.last
        or 'User "slack:U0ALICE" cannot patch' in reply.last
    )
    assert notifier.posts == [], "nobody may be asked to approve what the cluster refuses"
    assert last_request(core) is None
    assert production_image(kube) == f"{IMAGE}:1.4.1"
    refused = audit_details(core, "command_rejected")[-1]
    assert refused["outcome"] == "plan_failed"
    assert refused["identity"]["kubernetes_user"] == "slack:U0ALICE"
    patches = [request for request in calls_to(kube, PRODUCTION) if request.method == "PATCH"]
    assert patches and all(request.query.get("dryRun") == "All" for request in patches), "only the dry run was tried"


def test_on_call_deploys_to_production_and_every_call_of_the_request_is_impersonated(
    ops: tuple[OpsbotCore, RecordingNotifier], kube: FakeKubernetesServer, sqlite_url: str
) -> None:
    core, notifier = ops
    run(core, BOB, "deploy checkout 1.4.2 to production")
    row = last_request(core)
    assert row is not None and row.state == RequestState.PENDING_APPROVAL
    asked = notifier.posts[0].message
    assert "run as the requester (slack:U0BOB)" in "\n".join(asked.sections)
    reply = RecordingReplier()
    core.front_door.handle_click(
        Click(
            CAROL,
            "C0OPS",
            ButtonAction.APPROVE,
            f"{row.id}:{row.params_hash[:16]}:{row.plan_hash[:16]}",
            MessageRef.from_dict(row.message_ref),
        ),
        reply,
    )
    assert core.wait_idle(timeout=60)
    final = last_request(core)
    assert final is not None
    assert final.state == RequestState.SUCCEEDED, final.result
    assert production_image(kube) == f"{IMAGE}:1.4.2"

    calls = calls_to(kube, PRODUCTION)
    assert any(call.method == "PATCH" and "dryRun" not in call.query for call in calls), "the real PATCH was sent"
    for call in calls:
        assert call.header_lists.get("impersonate-user") == ("slack:U0BOB",), f"{call.method} {call.path} was not impersonated"
        assert call.header_lists.get("impersonate-group") == ("opsbot:platform-oncall",)
        assert call.header_lists.get("impersonate-extra-opsbot-request") in (("planning",), (str(row.id),))
    assert any(call.header_lists.get("impersonate-extra-opsbot-request") == (str(row.id),) for call in calls)
    started = audit_details(core, "step_started")
    assert started and all(event["identity"]["kubernetes_user"] == "slack:U0BOB" for event in started)
    assert started[0]["identity"]["kubernetes_groups"] == ["opsbot:platform-oncall"]

    exported = CliRunner().invoke(main, ["audit", "export", "--format", "jsonl"], env={"OPSBOT_DATABASE_URL": sqlite_url})
    assert exported.exit_code == 0, exported.output
    steps = [json.loads(line) for line in exported.output.splitlines() if '"step_started"' in line]
    assert steps and all(line["identity"]["kubernetes_user"] == "slack:U0BOB" for line in steps)
    assert steps[0]["identity"]["impersonate_extra"] == {"opsbot-request": str(row.id)}


def test_each_group_goes_in_its_own_header_and_health_reads_stay_as_opsbot(
    ops: tuple[OpsbotCore, RecordingNotifier], kube: FakeKubernetesServer
) -> None:
    core, _ = ops
    run(core, CAROL, "deploy checkout 1.4.2 to staging")
    staging = calls_to(kube, "demo-staging")
    assert staging and all(call.header_lists.get("impersonate-group") == ("opsbot:platform-oncall", "opsbot:sre-leads") for call in staging)
    kube.clear_requests()
    core.backends.kubernetes.cluster(PRODUCTION).list_deployments("shop")
    assert kube.requests and all("impersonate-user" not in call.header_lists for call in kube.requests), "health reads stay as opsbot"
