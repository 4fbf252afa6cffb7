"""The whole gitops story over signed HTTP to a running opsbot, with the shipped deploy and rollback runbooks.

Slack is the fake Web API, git a real bare repository (file://), Argo CD the fake REST API, and
the Kubernetes cluster (for the drift guard) the fake API server. A person requests, sees the
diff in the approval message, another approves; opsbot commits with the trailers, syncs and
waits; a broken image degrades and is reverted; a branch moved after approval is refused.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.backends.gitops.change_actions import GitopsRollback
from bot.backends.gitops.commit_messages import trailers
from bot.catalog.catalog import load_catalog
from bot.catalog.registry import build_registry
from bot.messages import ButtonAction
from bot.requests.builtins import BUILTIN_SPECS
from bot.store.models import AuditEventRow, RequestRow
from bot.store.states import FINAL_STATES, RequestState
from fakes.argocd import FakeApplication, FakeArgoCd
from fakes.kubernetes import FakeKubernetesServer
from fakes.slack import FakeSlackApi, Message
from tests.conftest import RUNBOOKS
from tests.integration.gitops_support import KUSTOMIZATION, Origin, make_origin
from tests.integration.slack_support import (
    RunningServer,
    catalog_factory,
    fake_slack,
    latest_message,
    migrated,
    posted_request,
    serve_opsbot,
    slack_settings,
    wait_until,
)

PATH = "apps/checkout/production/kustomization.yaml"
REQUESTER, APPROVER = "U0REQ", "U0A00"
ARGO_TOKEN = "argocd-token-for-tests"

CONFIG = """\
users: {{U0REQ: requester, U0A00: approver0}}
groups:
  developers: [U0REQ, U0A00]
  platform-oncall: [U0A00]
channels: {{incident: C0INCIDENT}}
kubernetes: {{kubeconfig: {kubeconfig}}}
services:
  checkout:
    default_env: production
    environments:
      production:
        gitops:
          repo: {repo}
          branch: main
          path: {path}
          kustomize_image: registry.example.com/shop/checkout
          sync:
            argocd: {{server: {argocd}, app: shop-checkout}}
  cart:
    default_env: production
    environments:
      production:
        kubernetes: {{context: prod, namespace: shop, deployment: cart}}
policy:
  rules:
    - runbooks: ["*"]
      envs: [production]
      allow: {{groups: [developers]}}
      approvals: {{count: 1, approvers: [platform-oncall], expires_in: 10m}}
"""


@pytest.fixture
def origin(tmp_path: Path) -> Origin:
    return make_origin(tmp_path, {PATH: KUSTOMIZATION})


@pytest.fixture
def argocd(origin: Origin) -> Iterator[FakeArgoCd]:
    fake = FakeArgoCd(token=ARGO_TOKEN)
    app = fake.add_app(FakeApplication("shop-checkout", str(origin.bare), PATH, broken_images={'newTag: "9.9.9-broken"'}))
    app.synced_revision = origin.head()
    with fake:
        yield fake


@pytest.fixture
def kube() -> Iterator[FakeKubernetesServer]:
    with FakeKubernetesServer(auto_tick=False) as server:
        server.add_deployment(
            cluster="prod", namespace="shop", name="cart", image="registry.example.com/shop/cart:2.0.0", replicas=2,
            annotations={"argocd.argoproj.io/tracking-id": "shop-cart:apps/Deployment:shop/cart"},
        )  # fmt: skip
        yield server


@pytest.fixture
def slack() -> Iterator[FakeSlackApi]:
    with fake_slack() as fake:
        yield fake


@pytest.fixture
def server(
    tmp_path: Path, origin: Origin, argocd: FakeArgoCd, kube: FakeKubernetesServer, slack: FakeSlackApi, sqlite_url: str
) -> Iterator[RunningServer]:
    runbooks = tmp_path / "runbooks"
    shutil.copytree(RUNBOOKS, runbooks)
    for name in ("deploy.yaml", "rollback.yaml"):
        path = runbooks / name
        path.write_text(path.read_text().replace("action: gitops.sync\n", "action: gitops.sync\n    args: {poll_seconds: 0.02}\n"))
    kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig", contexts=["prod"])
    config = tmp_path / "opsbot.yaml"
    config.write_text(CONFIG.format(kubeconfig=kubeconfig, repo=origin.url, path=PATH, argocd=argocd.url))
    registry = build_registry()
    registry.register_rollback(GitopsRollback(poll_seconds=0.02))
    catalog = load_catalog(config, runbooks, builtins=BUILTIN_SPECS, registry=registry)
    settings = slack_settings(
        slack, database_url=migrated(sqlite_url), config_path=config, runbooks_dir=runbooks,
        OPSBOT_ARGOCD_TOKEN=ARGO_TOKEN, OPSBOT_GIT_CACHE_DIR=str(tmp_path / "git-cache"),
        OPSBOT_GIT_AUTHOR_NAME="opsbot", OPSBOT_GIT_AUTHOR_EMAIL="opsbot@example.com",
    )  # fmt: skip
    with serve_opsbot(settings, core_factory=catalog_factory(dataclasses.replace(catalog))) as running:
        yield running


def request_posted(server: RunningServer, slack: FakeSlackApi, containing: str) -> Message:
    """The request's message; planning fetches from git first, so allow a loaded machine more than the default 5 s."""
    slack.wait_for(lambda: latest_message(slack, containing=containing), 30, what=f"a message with {containing!r}")
    return posted_request(server.opsbot, slack, containing)


def refusal_to(slack: FakeSlackApi, containing: str) -> str:
    found = slack.wait_for(lambda: [e.text for e in slack.ephemerals(user=REQUESTER) if containing in e.text], 30, what="the refusal")
    return str(found[-1])


def request_and_approve(server: RunningServer, slack: FakeSlackApi, text: str, containing: str) -> tuple[Message, RequestRow]:
    server.slack_user(slack, REQUESTER).command(text)
    message = request_posted(server, slack, containing)
    server.slack_user(slack, APPROVER).click(message, ButtonAction.APPROVE)
    return message, finished(server)


def finished(server: RunningServer) -> RequestRow:
    def last() -> RequestRow | None:
        with server.opsbot.database.reading() as session:
            row = session.scalars(select(RequestRow).order_by(RequestRow.id.desc())).first()
        return row if row is not None and row.state in FINAL_STATES else None

    return wait_until(last, timeout=30, what="the request to finish")


def step_data(server: RunningServer, request_id: int) -> list[dict[str, Any]]:
    with server.opsbot.database.reading() as session:
        rows = session.scalars(select(AuditEventRow).where(AuditEventRow.request_id == request_id).order_by(AuditEventRow.seq))
        return [json.loads(row.details).get("data") for row in rows if "data" in json.loads(row.details)]


def test_request_shows_the_diff_then_approve_commits_with_trailers_syncs_and_succeeds(
    server: RunningServer, slack: FakeSlackApi, origin: Origin, argocd: FakeArgoCd
) -> None:
    server.slack_user(slack, REQUESTER).command("deploy checkout 1.4.2 to production")
    message = request_posted(server, slack, "deploy checkout")
    shown = json.dumps(message.blocks, ensure_ascii=False)
    assert '-    newTag: \\"1.4.1\\"  # deployed by opsbot' in shown and '+    newTag: \\"1.4.2\\"  # deployed by opsbot' in shown
    assert f"branch main head `{origin.head()[:7]}` → `new commit`" in shown

    server.slack_user(slack, APPROVER).click(message, ButtonAction.APPROVE)
    row = finished(server)

    assert row.state == RequestState.SUCCEEDED, row.result
    commit = origin.head()
    found = trailers(origin.message())
    assert found["Requested-by"] == ["requester (Slack U0REQ)"] and found["Approved-by"] == ["approver0 (Slack U0A00)"]
    assert found["Opsbot-Request"] == [str(row.id)]
    assert origin.message().startswith(f"deploy checkout 1.4.2 to production (opsbot request #{row.id})")
    data = step_data(server, row.id)
    assert {
        "commit": commit,
        "image_before": "registry.example.com/shop/checkout:1.4.1",
        "image_after": "registry.example.com/shop/checkout:1.4.2",
    } in data
    assert {"synced_revision": commit} in data
    assert argocd.apps["shop-checkout"].health == "Healthy"
    assert "succeeded" in latest_message(slack, containing="deploy checkout").text


def test_a_broken_image_degrades_and_is_reverted_and_synced_back(
    server: RunningServer, slack: FakeSlackApi, origin: Origin, argocd: FakeArgoCd
) -> None:
    _, row = request_and_approve(server, slack, "deploy checkout 9.9.9-broken to production", "deploy checkout")

    assert row.state == RequestState.ROLLED_BACK, row.result
    assert "Degraded" in (row.result or "") and "reverted" in (row.result or "")
    assert origin.show(PATH) == KUSTOMIZATION
    assert origin.message().startswith(f'Revert "deploy checkout 9.9.9-broken to production (opsbot request #{row.id})"')
    app = argocd.apps["shop-checkout"]
    assert (app.synced_revision, app.health) == (origin.head(), "Healthy")


def test_a_branch_moved_after_approval_is_refused_as_stale(server: RunningServer, slack: FakeSlackApi, origin: Origin) -> None:
    server.slack_user(slack, REQUESTER).command("deploy checkout 1.4.2 to production")
    message = request_posted(server, slack, "deploy checkout")
    theirs = origin.colleague_pushes("apps/checkout/production/replicas.yaml", "replicas: 5\n")

    server.slack_user(slack, APPROVER).click(message, ButtonAction.APPROVE)
    row = finished(server)

    assert row.state == RequestState.NOT_STARTED  # a stale plan starts nothing (issue 14)
    assert "the target changed since the plan was approved" in (row.result or "")
    assert origin.head() == theirs and 'newTag: "1.4.1"' in origin.show(PATH)


def test_rollback_reverts_opsbots_last_deploy(server: RunningServer, slack: FakeSlackApi, origin: Origin, argocd: FakeArgoCd) -> None:
    request_and_approve(server, slack, "deploy checkout 1.4.2 to production", "deploy checkout")
    deployed = origin.head()

    _, row = request_and_approve(server, slack, "rollback checkout in production", "rollback checkout")

    assert row.state == RequestState.SUCCEEDED, row.result
    assert origin.show(PATH) == KUSTOMIZATION
    assert trailers(origin.message())["Opsbot-Reverts"] == [deployed]
    assert argocd.apps["shop-checkout"].synced_revision == origin.head()


def test_a_direct_change_to_an_argo_managed_deployment_is_refused_at_plan_time(
    server: RunningServer, slack: FakeSlackApi, kube: FakeKubernetesServer
) -> None:
    server.slack_user(slack, REQUESTER).command("scale cart 5 in production")

    refusal = refusal_to(slack, "managed by")
    assert "cart is managed by Argo CD app shop-cart; deploy it through a gitops target" in refusal
    assert not [r for r in kube.requests if r.method == "PATCH"]
    assert kube.deployment("prod", "shop", "cart")["spec"]["replicas"] == 2


def test_a_numbered_revision_on_a_gitops_target_is_refused_with_what_to_say_instead(
    server: RunningServer, slack: FakeSlackApi, origin: Origin
) -> None:
    before = origin.head()
    server.slack_user(slack, REQUESTER).command("rollback checkout in production to 7")

    refusal = refusal_to(slack, "gitops target")
    assert "it has commits, not numbered revisions" in refusal and "at 3f2a9c1" in refusal
    assert origin.head() == before
