"""``github.workflow_dispatch`` through the whole core against the fake GitHub API over HTTP.

Command → policy → plan (the workflow is read) → approval → dispatch (204) → the run it started
is found and followed from queued to completed → audit; a failed conclusion, a timeout (the run
is cancelled), a dispatch GitHub refuses, and GitHub App credentials exchanged for a token.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pydantic import SecretStr
from pytest_httpserver import HTTPServer
from sqlalchemy import select
from werkzeug import Request, Response

from bot.backends.gitops import github_credentials
from bot.backends.gitops.github import GitHubClient
from bot.catalog.catalog import load_catalog
from bot.errors import ConfigError
from bot.requests.builtins import BUILTIN_SPECS
from bot.requests.invocation import Invocation
from bot.serve.wiring import OpsbotCore, build_core
from bot.settings import Settings
from bot.store import audit as audit_store
from bot.store.migrate import upgrade
from bot.store.models import AuditEventRow
from bot.store.states import RequestState
from fakes.github import FakeGitHub
from fakes.github.actions import Workflow, workflows
from tests.doubles import RecordingNotifier, RecordingReplier
from tests.integration.gitops_support import make_origin
from tests.integration.request_flow import REQUESTER, approve_and_finish, ask

TOKEN = "ghs_test_token_0123456789"
CONFIG = """\
users: {U0REQ: requester, U0A00: approver0}
groups:
  approvers: [U0A00]
  requesters: [U0REQ, U0A00]
github: {api_url: "API_URL"}
services:
  checkout:
    default_env: production
    environments:
      production:
        kubernetes: {context: prod, namespace: shop, deployment: checkout}
policy:
  rules:
    - runbooks: [release]
      envs: [production]
      allow: {groups: [requesters]}
      approvals: {count: 1, approvers: [approvers], expires_in: 10m}
"""
RELEASE = """\
name: release
description: Run the release workflow of a service.
usage: release {service} {version} [in {env}]
parameters:
  service: {type: service}
  env: {type: env}
  version: {type: string, pattern: "[0-9]+[.][0-9]+[.][0-9]+"}
steps:
  - name: Release workflow
    action: github.workflow_dispatch
    timeout: STEP_TIMEOUT
    args:
      repo: shop/checkout
      workflow: WORKFLOW
      ref: main
      inputs: {version: "{version}", dry_run: false}
"""


@pytest.fixture
def github(tmp_path: Path) -> Iterator[FakeGitHub]:
    origin = make_origin(tmp_path, {"README.md": "checkout\n"})
    with FakeGitHub(token=TOKEN) as fake:
        fake.add_repo("shop", "checkout", origin.bare)
        yield fake


def release_workflow(github: FakeGitHub, **behaviour: Any) -> Workflow:
    inputs: dict[str, dict[str, Any]] = {"version": {"required": True}, "dry_run": {"default": "true"}}
    return workflows(github.state).add("shop/checkout", ".github/workflows/release.yml", inputs=inputs, **behaviour)


def write_catalog(directory: Path, api_url: str, *, step_timeout: str = "2m", workflow: str = "release.yml", repo: str = "") -> None:
    (directory / "runbooks").mkdir(exist_ok=True)
    runbook = RELEASE.replace("STEP_TIMEOUT", step_timeout).replace("WORKFLOW", workflow)
    if repo:
        runbook = runbook.replace("repo: shop/checkout", f"repo: {repo}")
    (directory / "runbooks" / "release.yml").write_text(runbook)
    (directory / "opsbot.yaml").write_text(CONFIG.replace("API_URL", api_url))


def make_app(
    tmp_path: Path, github: FakeGitHub, database_url: str, *, step_timeout: str = "2m", workflow: str = "release.yml"
) -> tuple[OpsbotCore, RecordingNotifier]:
    write_catalog(tmp_path, github.url, step_timeout=step_timeout, workflow=workflow)
    catalog = load_catalog(tmp_path / "opsbot.yaml", tmp_path / "runbooks", builtins=BUILTIN_SPECS)
    notifier = RecordingNotifier()
    settings = Settings(
        OPSBOT_DATABASE_URL=database_url, OPSBOT_INSTANCE_ID="workflow-test", OPSBOT_GITHUB_TOKEN=SecretStr(TOKEN),
        OPSBOT_GIT_CACHE_DIR=tmp_path / "git-cache",
    )  # fmt: skip
    app = build_core(settings, notifier=notifier, catalog=catalog)
    upgrade(app.database)
    return app, notifier


@pytest.fixture
def app(tmp_path: Path, github: FakeGitHub, database_url: str) -> Iterator[tuple[OpsbotCore, RecordingNotifier]]:
    application, notifier = make_app(tmp_path, github, database_url)
    yield application, notifier
    application.close()


def run_urls(github: FakeGitHub) -> list[str]:
    return [f"{github.url}/shop/checkout/actions/runs/{run_id}" for run_id in sorted(workflows(github.state).runs)]


def test_a_release_workflow_is_planned_approved_dispatched_followed_and_linked(
    app: tuple[OpsbotCore, RecordingNotifier], github: FakeGitHub
) -> None:
    ops, notifier = app
    release_workflow(github)

    row = ask(ops, "release checkout 1.4.2")

    assert [(item["field"], item["after"]) for item in row.plan] == [
        ("workflow", "shop/checkout release (.github/workflows/release.yml) on main"),
        ("inputs", "version=1.4.2, dry_run=false"),
    ]
    assert workflows(github.state).dispatches == [], "nothing is dispatched before the approval"

    done = approve_and_finish(ops, row)

    assert done.state == RequestState.SUCCEEDED, done.result
    assert workflows(github.state).dispatches == [
        {
            "repo": "shop/checkout",
            "workflow": ".github/workflows/release.yml",
            "ref": "main",
            "inputs": {"version": "1.4.2", "dry_run": "false"},
        }
    ]
    [url] = run_urls(github)
    thread = "\n".join(post.message.text for post in notifier.posts if post.thread is not None)
    assert url in thread, "the run is linked in the request's thread"
    with ops.database.reading() as session:
        rows = session.scalars(select(AuditEventRow).where(AuditEventRow.request_id == row.id).order_by(AuditEventRow.seq))
        events = [event.event for event in rows if event.event != "step_progress"]
    assert events[-3:] == ["step_started", "step_finished", "succeeded"]
    assert audit_store.verify(ops.database).broken is None


def test_a_failed_run_fails_the_step_with_its_link(app: tuple[OpsbotCore, RecordingNotifier], github: FakeGitHub) -> None:
    ops, _ = app
    release_workflow(github, conclusion="failure")

    done = approve_and_finish(ops, ask(ops, "release checkout 1.4.2"))

    [url] = run_urls(github)
    assert done.state == RequestState.FAILED
    assert done.result == f"release.yml run #1 in shop/checkout concluded failure: {url}"


def test_a_run_past_the_step_timeout_is_cancelled(tmp_path: Path, github: FakeGitHub, database_url: str) -> None:
    release_workflow(github, run_seconds=None)
    ops, _ = make_app(tmp_path, github, database_url, step_timeout="3s")
    try:
        done = approve_and_finish(ops, ask(ops, "release checkout 1.4.2"))
    finally:
        ops.close()

    [(_, run)] = workflows(github.state).runs.values()
    assert done.state == RequestState.FAILED
    assert "release.yml in shop/checkout did not finish in time; run #1" in (done.result or "") and "was cancelled" in (done.result or "")
    assert run.cancelled_at is not None, "GitHub was asked to cancel the run"


def test_an_unknown_workflow_is_refused_at_the_plan(tmp_path: Path, github: FakeGitHub, database_url: str) -> None:
    ops, _ = make_app(tmp_path, github, database_url, workflow="nightly.yml")
    reply = RecordingReplier()
    try:
        ops.front_door.handle_command(Invocation(REQUESTER, "C0OPS", "release checkout 1.4.2"), reply)
    finally:
        ops.close()

    assert "no workflow nightly.yml in shop/checkout" in reply.last


def test_a_dispatch_github_refuses_fails_the_step_with_githubs_reason(
    app: tuple[OpsbotCore, RecordingNotifier], github: FakeGitHub
) -> None:
    ops, _ = app
    workflows(github.state).add("shop/checkout", ".github/workflows/release.yml", inputs={"version": {"required": True}})

    done = approve_and_finish(ops, ask(ops, "release checkout 1.4.2"))

    assert done.state == RequestState.FAILED
    assert 'answered 422: Unexpected inputs provided: ["dry_run"]' in (done.result or "")
    assert workflows(github.state).runs == {}


def test_validate_refuses_a_parameter_in_the_repository_as_file_and_line(tmp_path: Path) -> None:
    write_catalog(tmp_path, "https://api.github.com", repo='"shop/{version}"')

    with pytest.raises(ConfigError) as refused:
        load_catalog(tmp_path / "opsbot.yaml", tmp_path / "runbooks", builtins=BUILTIN_SPECS)

    [problem] = refused.value.problems
    assert problem.startswith(f"{tmp_path / 'runbooks' / 'release.yml'}:13: steps[0].args.repo: ")
    assert "parameters may only be used in ref and inputs" in problem


def test_github_app_credentials_are_exchanged_for_an_installation_token(httpserver: HTTPServer, tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    key_file = tmp_path / "app.pem"
    key_file.write_text(pem)
    claims: list[dict[str, Any]] = []

    def issue_token(request: Request) -> Response:
        header, payload, signature = request.headers["Authorization"].removeprefix("Bearer ").split(".")
        key.public_key().verify(_unb64(signature), f"{header}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
        claims.append(json.loads(_unb64(payload)))
        return Response(json.dumps({"token": "ghs_installation", "expires_at": "2099-01-01T00:00:00Z"}), status=201)

    httpserver.expect_request("/app/installations/77/access_tokens", method="POST").respond_with_handler(issue_token)
    httpserver.expect_request(
        "/repos/shop/checkout/actions/workflows/release.yml", headers={"Authorization": "Bearer ghs_installation"}
    ).respond_with_json({"id": 5, "name": "release", "path": ".github/workflows/release.yml", "state": "active"})
    settings = Settings(
        OPSBOT_GITHUB_APP_ID="4242", OPSBOT_GITHUB_APP_INSTALLATION_ID="77",
        OPSBOT_GITHUB_APP_PRIVATE_KEY=SecretStr(key_file.read_text()),
    )  # fmt: skip
    client = GitHubClient(httpserver.url_for("/"), "shop/checkout", github_credentials(settings))

    first, second = client.workflow("release.yml"), client.workflow("release.yml")

    assert first["name"] == second["name"] == "release"
    [claim] = claims
    assert claim["iss"] == "4242" and claim["exp"] - claim["iat"] <= 600
    assert claim["iat"] <= time.time(), "backdated for clock drift"


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
