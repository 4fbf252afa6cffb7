"""``/ops can-i`` over signed HTTP to a running opsbot: the policy's answer and the cluster's, as the asker.

The server is ``build_server`` under uvicorn; the slash command is signed as Slack signs it;
the answer comes back through the command's ``response_url`` on the fake Slack; the cluster
is the fake API server enforcing RBAC per impersonated group.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from slack_sdk import WebClient
from sqlalchemy import select

from bot.catalog.catalog import Catalog
from bot.messages import Notifier
from bot.requests.groups import ExternalGroupResolver
from bot.serve.wiring import OpsbotCore, build_core
from bot.settings import Settings
from bot.slack.user_emails import SlackEmails
from bot.store.models import AuditEventRow
from fakes.kubernetes import FakeKubernetesServer, Grant
from fakes.slack import FakeSlackApi
from tests.conftest import EXAMPLE_CONFIG, RUNBOOKS
from tests.integration.slack_support import (
    BOT_TOKEN,
    FAST_TIMING,
    RunningServer,
    migrated,
    serve_opsbot,
    slack_settings,
)

ALICE, BOB = "U0ALICE", "U0BOB"


def ephemeral_to(slack: FakeSlackApi, user: str, containing: str) -> str:
    found = slack.wait_for(
        lambda: [e.text for e in slack.ephemerals(user=user) if containing in e.text],
        20,
        what=f"an ephemeral to {user} with {containing!r}",
    )
    return str(found[-1])


@pytest.fixture
def kube() -> Iterator[FakeKubernetesServer]:
    server = FakeKubernetesServer(tick_seconds=0.05)
    server.start()
    server.add_deployment(cluster="demo-production", namespace="shop", name="checkout", image="shop/checkout:1.4.1", container="checkout")
    server.rbac.grant(Grant("developers-read", ("get", "list"), ("deployments", "replicasets", "pods"), groups=("opsbot:developers",)))
    server.rbac.grant(Grant("oncall", ("get", "list", "patch"), ("deployments", "replicasets", "pods"), groups=("opsbot:platform-oncall",)))
    yield server
    server.stop()


@pytest.fixture
def slack() -> Iterator[FakeSlackApi]:
    with FakeSlackApi(token=BOT_TOKEN, users={ALICE: "alice", BOB: "bob"}, channels={"C0OPS": "ops", "C0INCIDENT": "incident"}) as fake:
        yield fake


@pytest.fixture
def server(
    tmp_path: Path, kube: FakeKubernetesServer, slack: FakeSlackApi, example_catalog: Catalog, sqlite_url: str
) -> Iterator[RunningServer]:
    kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig", contexts=["demo-staging", "demo-production"])
    config = example_catalog.config.model_copy(
        update={"kubernetes": example_catalog.config.kubernetes.model_copy(update={"kubeconfig": str(kubeconfig)})}
    )
    catalog = dataclasses.replace(example_catalog, config=config)

    def factory(settings: Settings, notifier: Notifier, groups: ExternalGroupResolver) -> OpsbotCore:
        return build_core(
            settings, notifier=notifier, catalog=catalog, external_groups=groups, timing=FAST_TIMING, maintenance_interval=60.0
        )

    settings = slack_settings(slack, database_url=migrated(sqlite_url), config_path=EXAMPLE_CONFIG, runbooks_dir=RUNBOOKS)
    with serve_opsbot(settings, core_factory=factory) as running:
        yield running


def test_can_i_answers_with_the_policy_and_the_clusters_verdict_for_the_asker(
    server: RunningServer, slack: FakeSlackApi, kube: FakeKubernetesServer
) -> None:
    response = server.slack_user(slack, ALICE).command("can-i deploy checkout 1.4.2 to production")
    assert response.status_code == 200, response.text
    assert response.json()["text"] == "Working on `can-i deploy checkout 1.4.2 to production`…"
    answer = ephemeral_to(slack, ALICE, "Can you")
    assert "opsbot's policy:* yes (rule production changes need an on-call approval); production needs 1 approval" in answer
    assert "Cluster demo-production, as you (slack:U0ALICE, groups opsbot:developers):" in answer
    assert '✅ `get deployments checkout in shop` — RBAC: allowed by ClusterRoleBinding "developers-read"' in answer
    assert "❌ `patch deployments checkout in shop`" in answer

    server.slack_user(slack, BOB).command("can-i deploy checkout 1.4.2 to production")
    assert "✅ `patch deployments checkout in shop`" in ephemeral_to(slack, BOB, "Can you")

    reviews = [request for request in kube.requests if request.path.endswith("/selfsubjectaccessreviews")]
    assert {request.header_lists.get("impersonate-user") for request in reviews} == {("slack:U0ALICE",), ("slack:U0BOB",)}
    assert all(request.method != "PATCH" for request in kube.requests), "can-i changes nothing, not even in a dry run"
    server.wait_idle()
    with server.opsbot.database.reading() as session:
        rows = list(session.scalars(select(AuditEventRow).where(AuditEventRow.event == "access_checked").order_by(AuditEventRow.seq)))
    assert [row.actor_id for row in rows] == [ALICE, BOB]
    assert {"check": "patch deployments checkout in shop", "allowed": False} in json.loads(rows[0].details)["checks"]


def test_can_i_about_a_built_in_or_nothing_is_a_usage_error_in_the_ack(server: RunningServer, slack: FakeSlackApi) -> None:
    response = server.slack_user(slack, ALICE).command("can-i lock checkout")
    assert "`can-i` asks about a runbook; `lock` is a built-in command." in response.json()["text"]
    response = server.slack_user(slack, ALICE).command("can-i")
    assert "`can-i` needs a runbook command after it." in response.json()["text"]


def test_the_email_for_identity_templates_comes_from_slack_users_info(slack: FakeSlackApi) -> None:
    emails = SlackEmails(WebClient(token=BOT_TOKEN, base_url=slack.api_url))
    assert emails(ALICE) == "alice@example.com"
    assert emails("U0NOBODY") is None, "a lookup that fails gives no email (the identity map then fails closed)"
    assert len(slack.calls_to("users.info")) == 2
    assert emails(ALICE) == "alice@example.com" and len(slack.calls_to("users.info")) == 2, "cached"
