"""``kubernetes.job`` through the whole core against the fake Kubernetes API over HTTP.

Command → policy → plan (a dry-run create) → approval → run (create, wait for Complete/Failed,
pod log into the thread) → audit, as a person in the channel and the cluster's owner would see
it. What a Job's pod does is set by ``FAKE_JOB_*`` env variables (fakes/kubernetes/jobs.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.catalog.catalog import load_catalog
from bot.errors import ConfigError
from bot.messages import ButtonAction, MessageRef
from bot.requests.builtins import BUILTIN_SPECS
from bot.requests.invocation import Click, Invocation
from bot.runs.engine import RunnerTiming
from bot.serve.wiring import OpsbotCore, build_core
from bot.settings import Settings
from bot.store import audit as audit_store
from bot.store.migrate import upgrade
from bot.store.models import AuditEventRow, RequestRow
from bot.store.states import RequestState
from fakes.kubernetes import ApiRequest, FakeKubernetesServer, Grant
from tests.doubles import RecordingNotifier, RecordingReplier
from tests.integration.request_flow import APPROVER, REQUESTER, approve_and_finish, ask

MIGRATE_IMAGE = "registry.example.com/shop/checkout-migrate:7.1"
CONFIG = """\
users: {U0REQ: requester, U0A00: approver0}
groups:
  approvers: [U0A00]
  requesters: [U0REQ, U0A00]
channels: {incident: C0INCIDENT}
kubernetes: {kubeconfig: "KUBECONFIG"}
services:
  checkout:
    default_env: production
    environments:
      production:
        kubernetes: {context: prod, namespace: shop, deployment: checkout}
policy:
  rules:
    - runbooks: [migrate, batch]
      envs: [production]
      allow: {groups: [requesters]}
      approvals: {count: 1, approvers: [approvers], expires_in: 10m}
"""
MIGRATE = """\
name: migrate
description: Run the database migrations of a service up to a schema version.
usage: migrate {service} to {version} [in {env}]
parameters:
  service: {type: service}
  env: {type: env}
  version: {type: int, min: 1}
steps:
  - name: Run the migrations
    action: kubernetes.job
    args:
      from_cronjob: checkout-migrate
      args: [up, --to, "{version}"]
      env: {TARGET_VERSION: "{version}"}
"""
BATCH = """\
name: batch
description: Run a batch job whose exit code, length and output the test chooses.
usage: batch {service} exit {code} ticks {ticks} lines {lines} [in {env}]
parameters:
  service: {type: service}
  env: {type: env}
  code: {type: int, min: 0, max: 255}
  ticks: {type: int, min: 1}
  lines: {type: int, min: 0}
steps:
  - name: Run the batch
    action: kubernetes.job
    timeout: STEP_TIMEOUT
    args:
      image: registry.example.com/tools/batch:2.0
      command: [batch, run]
      env: {FAKE_JOB_EXIT: "{code}", FAKE_JOB_TICKS: "{ticks}", FAKE_JOB_LINES: "{lines}"}
"""


@pytest.fixture
def kube() -> Iterator[FakeKubernetesServer]:
    # Cluster time runs slower than the test's (0.5 s a second): the run's own timeout, not the Job's deadline, ends a slow Job.
    with FakeKubernetesServer(tick_seconds=0.02, seconds_per_tick=0.01) as server:
        server.add_deployment(cluster="prod", namespace="shop", name="checkout", image="registry.example.com/shop/checkout:1.0")
        server.add_cronjob(
            cluster="prod", namespace="shop", name="checkout-migrate", image=MIGRATE_IMAGE, command=["migrate"],
            env={"DATABASE_HOST": "db.shop", "FAKE_JOB_LINES": "4"},
        )  # fmt: skip
        yield server


def write_catalog(directory: Path, kubeconfig: Path, *, step_timeout: str = "5m", migrate: str = MIGRATE) -> None:
    (directory / "runbooks").mkdir(exist_ok=True)
    (directory / "runbooks" / "migrate.yaml").write_text(migrate)
    (directory / "runbooks" / "batch.yaml").write_text(BATCH.replace("STEP_TIMEOUT", step_timeout))
    (directory / "opsbot.yaml").write_text(CONFIG.replace("KUBECONFIG", str(kubeconfig)))


def make_app(
    tmp_path: Path, kube: FakeKubernetesServer, database_url: str, *, step_timeout: str = "5m", impersonate: bool = False
) -> tuple[OpsbotCore, RecordingNotifier]:
    kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig", contexts=["prod"])
    write_catalog(tmp_path, kubeconfig, step_timeout=step_timeout)
    if impersonate:  # the identity section: every call of a request is sent as the requester
        config = tmp_path / "opsbot.yaml"
        config.write_text(config.read_text() + "identity: {}\n")
    catalog = load_catalog(tmp_path / "opsbot.yaml", tmp_path / "runbooks", builtins=BUILTIN_SPECS)
    notifier = RecordingNotifier()
    settings = Settings(OPSBOT_DATABASE_URL=database_url, OPSBOT_INSTANCE_ID="job-test")
    app = build_core(settings, notifier=notifier, catalog=catalog, timing=RunnerTiming(heartbeat_seconds=0.05))
    upgrade(app.database)
    return app, notifier


@pytest.fixture
def app(tmp_path: Path, kube: FakeKubernetesServer, database_url: str) -> Iterator[tuple[OpsbotCore, RecordingNotifier]]:
    application, notifier = make_app(tmp_path, kube, database_url)
    yield application, notifier
    application.close()


def thread_text(notifier: RecordingNotifier) -> str:
    return "\n".join(post.message.text for post in notifier.posts if post.thread is not None)


def story(app: OpsbotCore, request_id: int) -> list[str]:
    with app.database.reading() as session:
        rows = session.scalars(select(AuditEventRow).where(AuditEventRow.request_id == request_id).order_by(AuditEventRow.seq))
        return [row.event for row in rows if row.event != "step_progress"]


def test_a_migration_job_from_a_cronjob_is_planned_approved_run_and_audited(
    app: tuple[OpsbotCore, RecordingNotifier], kube: FakeKubernetesServer
) -> None:
    ops, notifier = app

    row = ask(ops, "migrate checkout to 42")

    assert [(item["field"], item["after"]) for item in row.plan] == [
        ("job", f"from cronjob checkout-migrate, image {MIGRATE_IMAGE} in namespace shop of cluster prod"),
        ("command", "migrate up --to 42"),
        ("env", "TARGET_VERSION=42"),
    ]
    assert kube.jobs("prod") == [], "the plan is a dry run: no Job exists before the approval"

    done = approve_and_finish(ops, row)

    assert done.state == RequestState.SUCCEEDED, done.result
    [job] = kube.jobs("prod", "shop")
    assert job["spec"]["ttlSecondsAfterFinished"] == 3600, "the cluster cleans the Job up"
    assert job["metadata"]["labels"]["opsbot.dev/request"] == str(row.id)
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert (container["image"], container["command"], container["args"]) == (MIGRATE_IMAGE, ["migrate"], ["up", "--to", "42"])
    thread = thread_text(notifier)
    assert "$ migrate up --to 42" in thread and "TARGET_VERSION=42" in thread and "output line 4 of 4" in thread
    assert story(ops, row.id)[-3:] == ["step_started", "step_finished", "succeeded"]
    assert audit_store.verify(ops.database).broken is None


def test_a_failed_job_fails_the_step_with_the_pods_last_lines(app: tuple[OpsbotCore, RecordingNotifier]) -> None:
    ops, _ = app

    done = approve_and_finish(ops, ask(ops, "batch checkout exit 3 ticks 1 lines 2"))

    assert done.state == RequestState.FAILED
    result = done.result or ""
    assert "BackoffLimitExceeded" in result and "failed 1" in result
    assert "error: exiting with code 3" in result, "the pod's last lines say why"
    assert "step_failed" in story(ops, done.id)


def test_a_long_log_goes_to_the_thread_as_a_file(app: tuple[OpsbotCore, RecordingNotifier]) -> None:
    ops, notifier = app

    done = approve_and_finish(ops, ask(ops, "batch checkout exit 0 ticks 2 lines 150"))

    assert done.state == RequestState.SUCCEEDED, done.result
    [(_, title, content)] = notifier.uploads
    assert title == f"request-{done.id}-details.txt"
    assert "output line 150 of 150" in str(content)


def test_a_job_past_its_step_timeout_is_deleted_with_its_pods(tmp_path: Path, kube: FakeKubernetesServer, database_url: str) -> None:
    ops, _ = make_app(tmp_path, kube, database_url, step_timeout="2s")
    try:
        done = approve_and_finish(ops, ask(ops, "batch checkout exit 0 ticks 100000 lines 1"))
    finally:
        ops.close()

    assert done.state == RequestState.FAILED
    assert "did not finish in time; opsbot deleted it and its pods" in (done.result or "")
    assert kube.jobs("prod", "shop") == []
    assert [pod["metadata"]["name"] for pod in kube.pods("prod", "shop") if "batch" in pod["metadata"]["name"]] == []


def test_a_stopped_job_is_deleted_with_its_pods(app: tuple[OpsbotCore, RecordingNotifier], kube: FakeKubernetesServer) -> None:
    ops, _ = app
    row = ask(ops, "batch checkout exit 0 ticks 100000 lines 1")
    value = f"{row.id}:{row.params_hash[:16]}:{row.plan_hash[:16]}"
    ops.front_door.handle_click(
        Click(APPROVER, "C0OPS", ButtonAction.APPROVE, value, MessageRef.from_dict(row.message_ref)), RecordingReplier()
    )
    wait_until(
        lambda: any(pod["status"].get("phase") == "Running" for pod in kube.pods("prod", "shop") if "opsbot-job" in pod["metadata"]["name"])
    )

    ops.front_door.handle_command(Invocation(REQUESTER, "C0OPS", f"cancel {row.id}"), RecordingReplier())
    assert ops.wait_idle(timeout=60)

    with ops.database.reading() as session:
        done = session.get(RequestRow, row.id)
    assert done is not None and done.state == RequestState.CANCELLED, done.result if done else None
    assert kube.jobs("prod", "shop") == []
    assert [pod for pod in kube.pods("prod", "shop") if "opsbot-job" in pod["metadata"]["name"]] == []


def test_when_the_target_impersonates_the_requesters_rbac_decides_at_the_plan(
    tmp_path: Path, kube: FakeKubernetesServer, database_url: str
) -> None:
    kube.rbac.grant(Grant("read-migrations", ("get",), ("cronjobs",), groups=("opsbot:requesters",), namespaces=("shop",)))
    ops, _ = make_app(tmp_path, kube, database_url, impersonate=True)
    reply = RecordingReplier()
    try:
        ops.front_door.handle_command(Invocation(REQUESTER, "C0OPS", "migrate checkout to 42"), reply)
        refused = reply.last
        kube.rbac.grant(Grant("run-migrations", ("create",), ("jobs",), groups=("opsbot:requesters",), namespaces=("shop",)))
        row = ask(ops, "migrate checkout to 42")
    finally:
        ops.close()

    assert "may not create jobs in namespace shop" in refused and "slack:U0REQ" in refused
    assert row.plan[0]["after"].startswith("from cronjob checkout-migrate")
    dry_runs = [request for request in kube.requests if request.method == "POST" and "/jobs" in request.path]
    assert dry_runs and all(request.headers.get("impersonate-user") == "slack:U0REQ" for request in dry_runs)


def test_a_missing_cronjob_is_refused_at_the_plan_naming_it(app: tuple[OpsbotCore, RecordingNotifier], kube: FakeKubernetesServer) -> None:
    ops, _ = app
    kube.api.handle(_delete_cronjob())
    reply = RecordingReplier()

    ops.front_door.handle_command(Invocation(REQUESTER, "C0OPS", "migrate checkout to 42"), reply)

    assert "no cronjob checkout-migrate in namespace shop of cluster prod" in reply.last
    assert kube.jobs("prod") == []


def test_validate_refuses_a_parameter_in_the_image_as_file_and_line(tmp_path: Path) -> None:
    hostile = MIGRATE.replace("from_cronjob: checkout-migrate", 'image: "registry.example.com/{version}"')
    write_catalog(tmp_path, tmp_path / "kubeconfig", migrate=hostile)

    with pytest.raises(ConfigError) as refused:
        load_catalog(tmp_path / "opsbot.yaml", tmp_path / "runbooks", builtins=BUILTIN_SPECS)

    [problem] = refused.value.problems
    assert problem.startswith(f"{tmp_path / 'runbooks' / 'migrate.yaml'}:12: steps[0].args.image: ")
    assert "parameters may only be used in args and env" in problem


def test_validate_refuses_a_step_with_both_a_cronjob_and_an_image(tmp_path: Path) -> None:
    both = MIGRATE.replace("from_cronjob: checkout-migrate", "from_cronjob: checkout-migrate\n      image: busybox:1")
    write_catalog(tmp_path, tmp_path / "kubeconfig", migrate=both)

    with pytest.raises(ConfigError) as refused:
        load_catalog(tmp_path / "opsbot.yaml", tmp_path / "runbooks", builtins=BUILTIN_SPECS)

    assert any(":12: steps[0].args.from_cronjob: give either from_cronjob" in problem for problem in refused.value.problems)


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def _delete_cronjob() -> ApiRequest:
    return ApiRequest("DELETE", "/apis/batch/v1/namespaces/shop/cronjobs/checkout-migrate", cluster="prod")
