"""What's changing over signed HTTP to a running opsbot: the Slack approval message carries the change list.

Slack is the fake Web API (which checks every message against Block Kit's limits), the cluster
the fake Kubernetes API server, the source repository real git behind the fake GitHub, and the
images a fake OCI registry that wants a bearer token.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.catalog.catalog import load_catalog
from bot.catalog.registry import build_registry
from bot.requests.builtins import BUILTIN_SPECS
from fakes.github import FakeGitHub
from fakes.kubernetes import FakeKubernetesServer
from fakes.oci_registry import FakeOciRegistry
from fakes.slack import FakeSlackApi
from tests.conftest import RUNBOOKS
from tests.integration.slack_support import (
    RunningServer,
    catalog_factory,
    migrated,
    posted_request,
    serve_opsbot,
    slack_settings,
)
from tests.integration.source_support import TOKEN, SourceRepo, make_source

REQUESTER = "U0REQ"
PASSWORD = "registry-password-for-tests"

CONFIG = """\
users: {{U0REQ: requester, U0A00: approver0}}
groups:
  developers: [U0REQ, U0A00]
  platform-oncall: [U0A00]
kubernetes: {{kubeconfig: {kubeconfig}}}
registry:
  url: {registry}
  username_file: {username_file}
  password_file: {password_file}
services:
  checkout:
    default_env: production
    source: {{github: acme/checkout, tag_pattern: "v{{version}}", api_url: {github}}}
    environments:
      production:
        kubernetes: {{context: prod, namespace: shop, deployment: checkout, container: checkout}}
policy:
  rules:
    - runbooks: ["*"]
      envs: [production]
      allow: {{groups: [developers]}}
      approvals: {{count: 1, approvers: [platform-oncall], expires_in: 10m}}
      require_checks: true
"""


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub(token=TOKEN) as fake:
        yield fake


@pytest.fixture
def source(tmp_path: Path, github: FakeGitHub) -> SourceRepo:
    return make_source(tmp_path, github)


@pytest.fixture
def registry() -> Iterator[FakeOciRegistry]:
    with FakeOciRegistry(auth="token", users={"opsbot": PASSWORD}) as fake:
        fake.push("shop/checkout", "1.4.1", "1.4.2")
        yield fake


@pytest.fixture
def server(
    tmp_path: Path, github: FakeGitHub, source: SourceRepo, registry: FakeOciRegistry, slack: FakeSlackApi, sqlite_url: str
) -> Iterator[RunningServer]:
    with FakeKubernetesServer(tick_seconds=0.02, seconds_per_tick=10.0) as kube:
        kube.add_deployment(
            cluster="prod", namespace="shop", name="checkout", image="registry.example.com/shop/checkout:1.4.1", replicas=2,
            container="checkout",
        )  # fmt: skip
        (tmp_path / "user").write_text("opsbot")
        (tmp_path / "password").write_text(PASSWORD)
        config = tmp_path / "opsbot.yaml"
        kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig", contexts=["prod"])
        files = {"username_file": tmp_path / "user", "password_file": tmp_path / "password"}
        config.write_text(CONFIG.format(kubeconfig=kubeconfig, registry=registry.url, github=github.url, **files))
        runbooks = tmp_path / "runbooks"
        shutil.copytree(RUNBOOKS, runbooks)
        catalog = load_catalog(config, runbooks, builtins=BUILTIN_SPECS, registry=build_registry())
        settings = slack_settings(
            slack, database_url=migrated(sqlite_url), config_path=config, runbooks_dir=runbooks, OPSBOT_GITHUB_TOKEN=TOKEN
        )
        with serve_opsbot(settings, core_factory=catalog_factory(dataclasses.replace(catalog))) as running:
            yield running


def test_the_slack_approval_message_lists_what_is_changing(server: RunningServer, slack: FakeSlackApi, source: SourceRepo) -> None:
    source.report_status("v1.4.2", "failure", context="ci/build")
    server.slack_user(slack, REQUESTER).command("deploy checkout 1.4.2 to production")
    message = posted_request(server.opsbot, slack, "deploy checkout")
    shown = json.dumps(message.blocks, ensure_ascii=False)
    assert "*What's changing:*" in shown
    assert "*commits* `v1.4.1`...`v1.4.2`: 4 commits" in shown
    assert "Fix rounding — dana" in shown and "#1 Add coupons" in shown
    assert "/acme/checkout/compare/v1.4.1...v1.4.2|full compare v1.4.1...v1.4.2>" in shown
    assert "*checks:* failure" in shown and "ci/build: failure" in shown
    assert "require_checks adds 1: the new version's checks are failing" in shown
    assert "Approvals (0/2)" in shown
    assert PASSWORD not in shown


def test_a_missing_image_is_refused_privately_in_slack(server: RunningServer, slack: FakeSlackApi) -> None:
    server.slack_user(slack, REQUESTER).command("deploy checkout 1.4.3 to production")
    refusal = slack.wait_for(
        lambda: [e.text for e in slack.ephemerals(user=REQUESTER) if "is not in the registry" in e.text], 30, what="the refusal"
    )
    assert "Could not plan `deploy` for checkout/production: image registry.example.com/shop/checkout:1.4.3 is not in" in refusal[-1]
    assert slack.messages("C0OPS") == [], "nobody is asked to approve an image that does not exist"
