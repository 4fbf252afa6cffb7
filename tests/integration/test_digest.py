"""The health digest over the fake Kubernetes API server: summary, per-service health, changes, quiet mode, bulk calls.

The fixtures here (a small fleet on the fake cluster, an app wired to it with a
recording notifier) are also used by ``test_incidents.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from bot.audit.events import Actor, EventType
from bot.backends import Backends
from bot.backends.kubernetes.client import LIST_PAGE_SIZE
from bot.catalog.catalog import Catalog, load_catalog
from bot.catalog.config import Environment, KubernetesAccess, KubernetesTarget, OpsbotConfig, Service
from bot.catalog.grammar import vocabulary_of
from bot.catalog.registry import build_registry
from bot.cli.main import main
from bot.requests.builtins import BUILTIN_SPECS
from bot.requests.invocation import Invocation
from bot.runs.engine import RunnerTiming
from bot.serve.wiring import OpsbotCore, build_core
from bot.service_health import ServiceHealth
from bot.settings import Settings
from bot.store.database import Database
from bot.store.migrate import upgrade
from bot.store.models import AuditEventRow, RequestRow
from bot.store.states import RequestState
from bot.watch.digest_content import (
    Change,
    DigestContent,
    HealthItem,
    Pending,
    changes_from_events,
    fingerprint,
    select_targets,
    should_post,
    summary_line,
)
from bot.watch.digest_render import MAX_HEALTHY_LISTED, SECTION_MAX_CHARS, render_digest
from bot.watch.digests import Digests, gather_health
from fakes.kubernetes import FakeKubernetesServer
from tests.doubles import FakeClock, RecordingNotifier, RecordingReplier

REGISTRY = "registry.example.com/shop"
ALICE = Actor("U0ALICE", "alice")
BOB = Actor("U0BOB", "bob")
NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)

CONFIG = """\
users: {{U0ALICE: alice, U0BOB: bob, U0CAROL: carol}}
groups:
  developers: [U0ALICE]
  oncall: [U0BOB, U0CAROL]
channels:
  incident: C0INCIDENT
  digests:
    - {{channel: C0OPS, cron: "0 9 * * mon-fri", timezone: Europe/Berlin}}
    - {{channel: C0QUIET, cron: "30 8 * * *", timezone: Europe/Berlin, quiet: true}}
kubernetes: {{kubeconfig: {kubeconfig}, request_timeout: 5s}}
health: {{interval: 60s, degraded_after: 3m, restart_threshold: 5}}
services:
  checkout:
    environments:
      production: {{kubernetes: {{context: prod, namespace: shop, deployment: checkout}}}}
      staging: {{kubernetes: {{context: staging, namespace: shop, deployment: checkout}}}}
  payments:
    incident_channel: C0PAYMENTS
    environments:
      production: {{kubernetes: {{context: prod, namespace: payments, deployment: payments}}}}
  search:
    environments:
      production: {{kubernetes: {{context: prod, namespace: shop, deployment: search}}}}
policy:
  rules:
    - runbooks: [digest]
      envs: ["*"]
      allow: {{groups: [developers, oncall]}}
    - runbooks: [deploy, rollback]
      envs: [staging]
      allow: {{groups: [developers, oncall]}}
    - runbooks: [deploy, rollback]
      envs: [production]
      allow: {{groups: [developers, oncall]}}
      approvals: {{count: 1, approvers: [oncall], expires_in: 30m}}
"""

DEPLOY = """\
name: deploy
description: Roll out a new version of a service.
usage: deploy {service} {version} [to {env}]
parameters:
  service: {type: service}
  version: {type: string, pattern: "[A-Za-z0-9][A-Za-z0-9._-]{0,127}"}
  env: {type: env}
steps:
  - name: Set the new image
    action: kubernetes.set_image
    args: {tag: "{version}"}
  - name: Wait for the rollout
    action: kubernetes.wait_rollout
    args: {poll_seconds: 0.02}
    timeout: 1m
on_failure: rollback
timeout: 5m
examples: [deploy checkout 1.5.0 to staging]
"""

ROLLBACK = """\
name: rollback
description: Roll a service back to its previous revision.
usage: rollback {service} [in {env}] [to {revision}]
parameters:
  service: {type: service}
  env: {type: env}
  revision: {type: int, min: 1}
steps:
  - name: Roll back the Deployment
    action: kubernetes.rollback
    args: {to_revision: "{revision}"}
  - name: Wait for the rollout
    action: kubernetes.wait_rollout
    args: {poll_seconds: 0.02}
    timeout: 1m
approval:
  production: {count: 1, approvers: [oncall], expires_in: 15m}
timeout: 5m
examples: [rollback checkout in production]
"""


@dataclass
class Fleet:
    """The fake cluster, the app wired to it, and what the app posted."""

    server: FakeKubernetesServer
    app: OpsbotCore
    notifier: RecordingNotifier
    clock: FakeClock

    def run(self, actor: Actor, channel: str, text: str) -> RecordingReplier:
        reply = RecordingReplier()
        self.app.front_door.handle_command(Invocation(actor, channel, text), reply)
        assert self.app.wait_idle(timeout=60)
        return reply

    def health(self) -> list[ServiceHealth]:
        return gather_health(self.app.backends, select_targets(self.app.catalog.config, ["*"], ["*"]))

    def health_of(self, service: str, env: str = "production") -> ServiceHealth:
        return next(item for item in self.health() if (item.service, item.env) == (service, env))

    def set_image(self, context: str, namespace: str, name: str, image: str) -> None:
        body = {"spec": {"template": {"spec": {"containers": [{"name": name, "image": image}]}}}}
        self.app.backends.kubernetes.cluster(context).patch_deployment(namespace, name, body, patch_type="strategic")

    def requests(self) -> list[RequestRow]:
        with self.app.database.reading() as session:
            return list(session.scalars(select(RequestRow).order_by(RequestRow.id)))

    def audit(self, event: EventType) -> list[AuditEventRow]:
        with self.app.database.reading() as session:
            return list(session.scalars(select(AuditEventRow).where(AuditEventRow.event == str(event)).order_by(AuditEventRow.seq)))


def seed(server: FakeKubernetesServer) -> None:
    """checkout (prod 3, staging 2), payments (prod 2), search (prod 2): all rolled out and healthy."""
    server.add_deployment(cluster="prod", namespace="shop", name="checkout", image=f"{REGISTRY}/checkout:1.4.0", replicas=3,
                          progress_deadline_seconds=60)  # fmt: skip
    server.add_deployment(cluster="staging", namespace="shop", name="checkout", image=f"{REGISTRY}/checkout:1.4.0", replicas=2,
                          progress_deadline_seconds=60)  # fmt: skip
    server.add_deployment(cluster="prod", namespace="payments", name="payments", image=f"{REGISTRY}/payments:7.1", replicas=2)
    server.add_deployment(cluster="prod", namespace="shop", name="search", image=f"{REGISTRY}/search:2.0", replicas=2,
                          progress_deadline_seconds=60)  # fmt: skip


def make_fleet(tmp_path: Path, database_url: str, server: FakeKubernetesServer) -> Iterator[Fleet]:
    """An app on ``database_url`` whose catalog points at ``server`` (scheduler off: tests drive the jobs)."""
    kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig", contexts=["prod", "staging"])
    seed(server)
    (tmp_path / "runbooks").mkdir(exist_ok=True)
    (tmp_path / "runbooks" / "deploy.yaml").write_text(DEPLOY)
    (tmp_path / "runbooks" / "rollback.yaml").write_text(ROLLBACK)
    (tmp_path / "opsbot.yaml").write_text(CONFIG.format(kubeconfig=kubeconfig))
    catalog = load_catalog(tmp_path / "opsbot.yaml", tmp_path / "runbooks", builtins=BUILTIN_SPECS)
    notifier = RecordingNotifier()
    clock = FakeClock(NOW)
    settings = Settings(OPSBOT_DATABASE_URL=database_url, OPSBOT_INSTANCE_ID="test", OPSBOT_SCHEDULER=False)
    app = build_core(settings, notifier=notifier, catalog=catalog, clock=clock, timing=RunnerTiming(heartbeat_seconds=0.05))
    upgrade(app.database)
    assert app.scheduler is None
    try:
        yield Fleet(server, app, notifier, clock)
    finally:
        app.close()
        app.backends.kubernetes.close()


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll a condition on the fake cluster (its rollouts advance on their own ticks)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.fixture
def ticking_server() -> Iterator[FakeKubernetesServer]:
    """A fake cluster whose controllers tick on their own (10 s of cluster time every 10 ms)."""
    server = FakeKubernetesServer(auto_tick=True, tick_seconds=0.01).start()
    yield server
    server.stop()


@pytest.fixture
def fleet(tmp_path: Path, database_url: str, ticking_server: FakeKubernetesServer) -> Iterator[Fleet]:
    yield from make_fleet(tmp_path, database_url, ticking_server)


# -- the digest as people see it ----------------------------------------------------------


def test_digest_shows_summary_line_health_and_changes(fleet: Fleet) -> None:
    deployed = fleet.run(ALICE, "C0DEV", "deploy checkout 1.5.0 to staging")
    assert not deployed.messages, deployed.last
    assert fleet.requests()[-1].state == RequestState.SUCCEEDED
    fleet.set_image("prod", "shop", "search", f"{REGISTRY}/search:2.1-broken")
    wait_until(lambda: fleet.health_of("search").state == "failed", "search to exceed its progress deadline")
    fleet.clock.advance(timedelta(minutes=5))

    reply = fleet.run(ALICE, "C0OPS", "digest")

    assert not reply.messages, reply.last
    [posted] = fleet.notifier.in_channel("C0OPS")
    message = posted.message
    assert message.text == "3 services healthy, 1 failed · 1 deploy"
    assert message.sections[0] == "*3 services healthy, 1 failed · 1 deploy*"
    body = "\n".join(message.sections)
    assert f"❌ *search*/production — failed · 2/2 ready · `{REGISTRY}/search:2.1-broken` — ProgressDeadlineExceeded" in body
    assert f"✅ *checkout*/production — healthy · 3/3 ready · `{REGISTRY}/checkout:1.4.0`" in body
    assert f"✅ *checkout*/staging — healthy · 2/2 ready · `{REGISTRY}/checkout:1.5.0`" in body
    assert f"✅ *payments*/production — healthy · 2/2 ready · `{REGISTRY}/payments:7.1`" in body
    assert "✅ #1 deploy *checkout*/staging version=1.5.0 by alice — succeeded" in body
    assert "<" not in message.text, "the summary line carries no links or mentions"
    [event] = fleet.audit(EventType.DIGEST_POSTED)
    assert (event.channel, event.actor_name, event.outcome) == ("C0OPS", "alice", "posted")


def test_digest_to_another_channel_uses_that_channels_configuration(fleet: Fleet) -> None:
    reply = fleet.run(BOB, "C0DEV", "digest C0QUIET")

    assert [post.message.text for post in fleet.notifier.in_channel("C0QUIET")] == ["4 services healthy · no changes"]
    assert reply.last == "Posted the digest to <#C0QUIET>."


def test_quiet_digest_skips_an_unchanged_healthy_fleet_and_posts_when_something_changed(fleet: Fleet) -> None:
    quiet = fleet.app.digests.for_channel("C0QUIET")

    first = fleet.app.digests.post(quiet, slot="day-1")
    fleet.clock.advance(timedelta(days=1))
    unchanged = fleet.app.digests.post(quiet, slot="day-2")
    fleet.clock.advance(timedelta(hours=1))
    fleet.run(ALICE, "C0DEV", "deploy checkout 1.5.0 to staging")
    fleet.clock.advance(timedelta(hours=1))
    changed = fleet.app.digests.post(quiet, slot="day-3")
    fleet.clock.advance(timedelta(days=1))
    unchanged_again = fleet.app.digests.post(quiet, slot="day-4")

    assert [first.outcome, unchanged.outcome, changed.outcome, unchanged_again.outcome] == ["posted", "quiet", "posted", "quiet"]
    texts = [post.message.text for post in fleet.notifier.in_channel("C0QUIET")]
    assert texts == ["4 services healthy · no changes", "4 services healthy · 1 deploy"]
    assert [event.details for event in fleet.audit(EventType.DIGEST_POSTED)][1].count('"slot":"day-3"') == 1


def test_quiet_digest_posts_when_a_service_is_unhealthy(fleet: Fleet) -> None:
    quiet = fleet.app.digests.for_channel("C0QUIET")
    assert fleet.app.digests.post(quiet).outcome == "posted"
    fleet.set_image("prod", "payments", "payments", f"{REGISTRY}/payments:7.2-broken")
    wait_until(lambda: fleet.health_of("payments").state == "failed", "payments to fail")
    fleet.clock.advance(timedelta(days=1))

    result = fleet.app.digests.post(quiet)

    assert result.outcome == "posted"
    assert result.message is not None and result.message.text == "3 services healthy, 1 failed · no changes"


# -- bulk health: API calls grow with namespaces, not services ------------------------------


def kube_config(kubeconfig: Path, services: dict[str, tuple[str, str]]) -> OpsbotConfig:
    return OpsbotConfig(
        services={
            name: Service(
                environments={"production": Environment(kubernetes=KubernetesTarget(context="prod", namespace=ns, deployment=dep))}
            )
            for name, (ns, dep) in services.items()
        },
        kubernetes=KubernetesAccess(kubeconfig=str(kubeconfig)),
    )


def digest_calls(server: FakeKubernetesServer, config: OpsbotConfig, sqlite_url: str) -> tuple[int, DigestContent]:
    """Build a digest for ``config`` and count the requests the fake API server received."""
    backends = Backends(config)
    database = Database(sqlite_url)
    upgrade(database)
    catalog = Catalog(config=config, runbooks={}, registry=build_registry(), commands={}, vocabulary=vocabulary_of(config))

    def health(items: list[HealthItem]) -> list[ServiceHealth]:
        return gather_health(backends, items)

    digests = Digests(catalog=catalog, database=database, notifier=RecordingNotifier(), clock=FakeClock(NOW), health=health)
    server.clear_requests()
    try:
        content = digests.build(digests.for_channel("C0OPS"))
        return len(server.requests), content
    finally:
        backends.kubernetes.close()
        database.dispose()


def test_digest_api_calls_grow_with_namespaces_not_services(tmp_path: Path, sqlite_url: str) -> None:
    with FakeKubernetesServer(auto_tick=False) as server:
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig", contexts=["prod"])
        for namespace, name in [("shop", "checkout"), ("shop", "search"), ("shop", "cart"), ("payments", "payments")]:
            server.add_deployment(cluster="prod", namespace=namespace, name=name, image=f"{REGISTRY}/{name}:1", replicas=2)

        one, _ = digest_calls(server, kube_config(kubeconfig, {"checkout": ("shop", "checkout")}), sqlite_url)
        three, content = digest_calls(server, kube_config(kubeconfig, {n: ("shop", n) for n in ("checkout", "search", "cart")}), sqlite_url)
        two_namespaces, _ = digest_calls(
            server, kube_config(kubeconfig, {"checkout": ("shop", "checkout"), "payments": ("payments", "payments")}), sqlite_url
        )

    assert one == three == 2  # one list of Deployments and one list of Pods for the namespace
    assert two_namespaces == 4
    assert [item.state for item in content.health] == ["healthy"] * 3


def test_a_namespace_bigger_than_a_page_is_read_page_by_page_and_every_pod_counts(tmp_path: Path, sqlite_url: str) -> None:
    """Lists are read ``LIST_PAGE_SIZE`` items at a time, so memory is bounded by a page, and nothing past a page is lost."""
    with FakeKubernetesServer(auto_tick=False) as server:
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig", contexts=["prod"])
        server.add_deployment(
            cluster="prod", namespace="shop", name="checkout", image=f"{REGISTRY}/checkout:1", replicas=LIST_PAGE_SIZE + 1
        )
        calls, content = digest_calls(server, kube_config(kubeconfig, {"checkout": ("shop", "checkout")}), sqlite_url)
        requests = server.requests

    assert calls == 3  # one list of Deployments, two pages of Pods
    assert all(request.query.get("limit") == str(LIST_PAGE_SIZE) for request in requests)
    [checkout] = content.health
    assert (checkout.state, checkout.ready, checkout.available) == ("healthy", LIST_PAGE_SIZE + 1, LIST_PAGE_SIZE + 1)


# -- pure assembly -----------------------------------------------------------------------------


def snapshot(service: str, state: str = "healthy", env: str = "production", **values: object) -> ServiceHealth:
    counts = {"desired": 2, "ready": 2, "available": 2} if state == "healthy" else {"desired": 2, "ready": 1, "available": 1}
    fields: dict[str, object] = {"version": "img:1", **counts, **values}
    return ServiceHealth(service=service, env=env, target="t", state=state, **fields)  # type: ignore[arg-type]


def content_of(health: list[ServiceHealth], changes: tuple[Change, ...] = (), pending: tuple[Pending, ...] = ()) -> DigestContent:
    return DigestContent(
        channel="C0OPS", timezone="Europe/Berlin", generated_at=NOW, since=NOW - timedelta(days=1), health=tuple(health),
        changes=changes, pending=pending,
    )  # fmt: skip


def change(runbook: str, outcome: EventType = EventType.SUCCEEDED, request_id: int = 1) -> Change:
    return Change(request_id, runbook, "checkout", "production", str(outcome), "alice", NOW - timedelta(hours=1), "")


def test_summary_line_counts_states_and_changes_by_kind() -> None:
    health = [snapshot(f"svc{index}") for index in range(12)] + [snapshot("search", "degraded")]
    changes = (
        change("deploy"),
        change("deploy", request_id=2),
        change("deploy", EventType.ROLLED_BACK, 3),
        change("rollback", request_id=4),
    )

    assert summary_line(content_of(health, changes)) == "12 services healthy, 1 degraded · 3 deploys (1 failed), 1 rollback"
    assert summary_line(content_of([snapshot("a")])) == "1 service healthy · no changes"
    pending = (Pending(5, "deploy", "checkout", "production", "alice", NOW),)
    assert summary_line(content_of([], pending=pending)) == "no services · no changes · 1 waiting for approval"


def test_changes_are_finished_runs_of_mutating_runbooks_with_their_requester() -> None:
    @dataclass
    class Record:
        event: str
        request_id: int | None
        runbook: str
        params: str
        service: str = "checkout"
        env: str = "staging"
        at: datetime = NOW

    events = [
        Record("command_received", 1, "deploy", "{}"),
        Record("succeeded", 1, "deploy", '{"env":"staging","service":"checkout","version":"1.5.0"}'),
        Record("succeeded", 2, "status", "{}"),
        Record("rolled_back", 3, "deploy", '{"version":"1.6.0-broken"}'),
    ]

    changes = changes_from_events(events, {1: "alice", 3: "bob"}, {"deploy", "rollback"})

    assert [(c.request_id, c.outcome, c.by, c.detail) for c in changes] == [
        (1, "succeeded", "alice", "version=1.5.0"),
        (3, "rolled_back", "bob", "version=1.6.0-broken"),
    ]


def test_quiet_decision() -> None:
    healthy = content_of([snapshot("a"), snapshot("b")])
    last = fingerprint(healthy)

    assert should_post(healthy, quiet=False, last_fingerprint=last)
    assert not should_post(healthy, quiet=True, last_fingerprint=last)
    assert should_post(healthy, quiet=True, last_fingerprint=None), "the first quiet digest is posted"
    assert should_post(content_of([snapshot("a"), snapshot("b", version="img:2")]), quiet=True, last_fingerprint=last)
    assert should_post(content_of([snapshot("a"), snapshot("b", "progressing")]), quiet=True, last_fingerprint=last)
    assert should_post(content_of([snapshot("a"), snapshot("b")], (change("deploy"),)), quiet=True, last_fingerprint=last)


def test_a_large_fleet_renders_in_small_sections() -> None:
    health = [snapshot(f"svc{index:04d}", env=("production", "staging")[index % 2]) for index in range(2_000)]
    health += [snapshot(f"broken{index:02d}", "failed", reasons=("x" * 200,)) for index in range(60)]

    message = render_digest(content_of(health))

    assert message.text == "2,000 services healthy, 60 failed · no changes"
    assert all(len(section) <= SECTION_MAX_CHARS for section in message.sections)
    assert sum(section.count("❌") for section in message.sections) == 60, "every unhealthy service is listed"
    assert "*Healthy*\n✅ 2,000 healthy service environments (production: 1,000, staging: 1,000) — too many to list" in message.sections
    assert len(health) > MAX_HEALTHY_LISTED


def test_opsbot_digest_print_renders_in_the_terminal_and_posts_nothing(
    fleet: Fleet, tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSBOT_CONFIG", str(tmp_path / "opsbot.yaml"))
    monkeypatch.setenv("OPSBOT_RUNBOOKS_DIR", str(tmp_path / "runbooks"))
    monkeypatch.setenv("OPSBOT_DATABASE_URL", database_url)

    result = CliRunner().invoke(main, ["digest", "--print", "--channel", "C0QUIET"])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "── digest for #C0QUIET (30 8 * * *, Europe/Berlin) ──"
    assert "4 services healthy · no changes" in lines
    assert f"✅ checkout/staging — healthy · 2/2 ready · `{REGISTRY}/checkout:1.4.0`" in lines
    assert fleet.notifier.posts == [] and fleet.audit(EventType.DIGEST_POSTED) == []
