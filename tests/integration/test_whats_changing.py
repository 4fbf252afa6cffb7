"""What's changing, through the whole core: a deploy's approval message lists the commits, pull requests, image and checks.

The request goes policy → plan (fake Kubernetes API, fake GitHub over a real git repository, fake
OCI registry with token auth) → stored request → the message an approver reads → approvals → run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.audit.binding import plan_hash
from bot.audit.events import Actor
from bot.catalog.catalog import Catalog
from bot.catalog.config import ImageRegistry, ServiceSource
from bot.messages import ButtonAction, Message, MessageRef
from bot.requests.invocation import Click, Invocation
from bot.runs.engine import RunnerTiming
from bot.serve.wiring import OpsbotCore, build_core
from bot.settings import Settings
from bot.shell.render import to_text
from bot.store.migrate import upgrade
from bot.store.models import AuditEventRow, RequestRow
from bot.store.states import RequestState
from fakes.github import FAKE_GITHUB_LOGIN, FakeGitHub
from fakes.kubernetes import FakeKubernetesServer
from fakes.oci_registry import FakeOciRegistry
from tests.doubles import RecordingNotifier, RecordingReplier
from tests.integration.source_support import TOKEN, SourceRepo, make_source

ALICE, BOB, CAROL = Actor("U0ALICE", "alice"), Actor("U0BOB", "bob"), Actor("U0CAROL", "carol")
IMAGE = "registry.example.com/shop/checkout"
PASSWORD = "registry-password-42"


@dataclasses.dataclass
class World:
    ops: OpsbotCore
    notifier: RecordingNotifier
    kube: FakeKubernetesServer
    github: FakeGitHub
    registry: FakeOciRegistry
    source: SourceRepo
    digest: str


@pytest.fixture
def world(tmp_path: Path, example_catalog: Catalog, database_url: str, request: pytest.FixtureRequest) -> Iterator[World]:
    extra_commits = getattr(request, "param", 0)
    kube = FakeKubernetesServer(tick_seconds=0.02, seconds_per_tick=10.0)
    kube.start()
    for cluster in ("demo-staging", "demo-production"):
        kube.add_deployment(cluster=cluster, namespace="shop", name="checkout", image=f"{IMAGE}:1.4.1", replicas=2, container="checkout")
    with FakeGitHub(token=TOKEN) as github, FakeOciRegistry(auth="token", users={"opsbot": PASSWORD}) as registry:
        source = make_source(tmp_path, github, extra_commits=extra_commits)
        digest = registry.push("shop/checkout", "1.4.1", "1.4.2")
        (tmp_path / "registry-user").write_text("opsbot")
        (tmp_path / "registry-password").write_text(PASSWORD)
        config = example_catalog.config
        checkout = config.services["checkout"].model_copy(update={"source": ServiceSource(github="acme/checkout", api_url=github.url)})
        rules = [
            rule.model_copy(update={"require_checks": True}) if rule.name == "production changes need an on-call approval" else rule
            for rule in config.policy.rules
        ]
        config = config.model_copy(
            update={
                "kubernetes": config.kubernetes.model_copy(
                    update={"kubeconfig": str(kube.write_kubeconfig(tmp_path / "kubeconfig", contexts=["demo-staging", "demo-production"]))}
                ),
                "services": {**config.services, "checkout": checkout},
                "policy": config.policy.model_copy(update={"rules": rules, "freezes": []}),
                "registry": ImageRegistry(
                    url=registry.url, username_file=str(tmp_path / "registry-user"), password_file=str(tmp_path / "registry-password")
                ),
            }
        )
        notifier = RecordingNotifier()
        settings = Settings(OPSBOT_DATABASE_URL=database_url, OPSBOT_INSTANCE_ID="changes-test", OPSBOT_GITHUB_TOKEN=TOKEN)
        ops = build_core(
            settings, notifier=notifier, catalog=dataclasses.replace(example_catalog, config=config),
            timing=RunnerTiming(heartbeat_seconds=0.05),
        )  # fmt: skip
        upgrade(ops.database)
        yield World(ops, notifier, kube, github, registry, source, digest)
        ops.close()
    kube.stop()


def ask(world: World, text: str, actor: Actor = ALICE) -> RecordingReplier:
    reply = RecordingReplier()
    world.ops.front_door.handle_command(Invocation(actor, "C0OPS", text), reply)
    assert world.ops.wait_idle(timeout=60)
    return reply


def approve(world: World, row: RequestRow, actor: Actor) -> RecordingReplier:
    reply = RecordingReplier()
    value = f"{row.id}:{row.params_hash[:16]}:{row.plan_hash[:16]}"
    world.ops.front_door.handle_click(Click(actor, "C0OPS", ButtonAction.APPROVE, value, MessageRef.from_dict(row.message_ref)), reply)
    assert world.ops.wait_idle(timeout=60)
    return reply


def last_request(world: World) -> RequestRow | None:
    with world.ops.database.reading() as session:
        return session.scalars(select(RequestRow).order_by(RequestRow.id.desc())).first()


def shown(message: Message) -> str:
    """The message as a person reads it (the shell's rendering of the same Message Slack gets)."""
    return "\n".join([message.title or "", *message.sections, *(f"{label}: {value}" for label, value in message.fields)])


def approval_message(world: World) -> str:
    post = world.notifier.posts[-1]
    return to_text(shown(world.notifier.current[post.ref]), lambda user: user)


def outcomes(world: World, name: str) -> list[tuple[str, str]]:
    """(outcome, details) of each audit event named ``name``."""
    with world.ops.database.reading() as session:
        rows = session.scalars(select(AuditEventRow).where(AuditEventRow.event == name).order_by(AuditEventRow.seq))
        return [(row.outcome, row.details) for row in rows]


def green(world: World) -> None:
    world.source.report_status("v1.4.2", "success")


def test_the_approval_message_lists_the_commits_pull_requests_image_and_checks(world: World) -> None:
    green(world)
    ask(world, "deploy checkout 1.4.2 to production")
    row = last_request(world)
    assert row is not None and row.state == RequestState.PENDING_APPROVAL
    text = approval_message(world)
    assert "What's changing:" in text
    assert "commits `v1.4.1`...`v1.4.2`: 4 commits" in text
    assert "Fix rounding — dana" in text and "Coupons: model — erin" in text
    assert f"#1 Add coupons — {FAKE_GITHUB_LOGIN}" in text, "a pull request is named with who opened it"
    assert f"full compare v1.4.1...v1.4.2 ({world.github.url}/acme/checkout/compare/v1.4.1...v1.4.2)" in text
    assert f"image in registry: {world.digest}\n    `shop/checkout:1.4.2` is there" in text
    assert "checks: success" in text and "all 1 green on `v1.4.2`" in text
    assert row.approvals_required == 1, "green checks add no approval"
    assert plan_hash(row.plan) == row.plan_hash and any(item.get("field") == "commits" for item in row.plan)


@pytest.mark.parametrize("world", [14], indirect=True)
def test_a_long_change_list_is_capped_with_and_m_more(world: World) -> None:
    green(world)
    ask(world, "deploy checkout 1.4.2 to production")
    text = approval_message(world)
    assert "18 commits" in text
    assert "… and 8 more" in text
    assert text.count("Tune cache") == 9, "the newest ten commits are listed by name"


def test_a_missing_image_is_refused_before_anyone_approves(world: World) -> None:
    reply = ask(world, "deploy checkout 1.4.3 to production")
    assert last_request(world) is None, "no request, so nobody is asked to approve"
    assert world.notifier.posts == []
    assert "image registry.example.com/shop/checkout:1.4.3 is not in the registry at" in reply.last
    assert "repository shop/checkout has no 1.4.3" in reply.last
    assert PASSWORD not in reply.last
    rejected = outcomes(world, "command_rejected")
    assert [outcome for outcome, _ in rejected] == ["plan_failed"]
    assert "is not in the registry" in rejected[0][1]


def test_failing_checks_ask_for_one_more_approval_and_say_why(world: World) -> None:
    world.source.report_status("v1.4.2", "failure")
    ask(world, "deploy checkout 1.4.2 to production")
    row = last_request(world)
    assert row is not None and row.approvals_required == 2
    text = approval_message(world)
    assert "require_checks adds 1: the new version's checks are failing" in text
    assert "not green on `v1.4.2`" in text and "ci/test: failure" in text
    approve(world, row, BOB)
    row = last_request(world)
    assert row is not None and row.state == RequestState.PENDING_APPROVAL, "one approval is not enough"
    world.source.report_status("v1.4.2", "success")  # turning green after the ask changes nothing that was approved
    approve(world, row, CAROL)
    row = last_request(world)
    assert row is not None
    assert row.state == RequestState.SUCCEEDED, row.result
    assert world.kube.deployment("demo-production", "shop", "checkout")["spec"]["template"]["spec"]["containers"][0]["image"] == (
        f"{IMAGE}:1.4.2"
    )


def test_github_down_is_said_and_the_request_goes_on_with_the_extra_approval(world: World) -> None:
    world.github.http.stop()
    ask(world, "deploy checkout 1.4.2 to production")
    row = last_request(world)
    assert row is not None and row.state == RequestState.PENDING_APPROVAL
    text = approval_message(world)
    assert "could not reach GitHub for acme/checkout" in text
    assert "could not reach GitHub: could not reach" not in text
    assert "require_checks adds 1: the new version's checks could not be read from GitHub" in text
    assert row.approvals_required == 2


def test_registry_down_is_said_and_does_not_block(world: World) -> None:
    green(world)
    world.registry.fail_with(503)
    ask(world, "deploy checkout 1.4.2 to production")
    row = last_request(world)
    assert row is not None and row.state == RequestState.PENDING_APPROVAL
    assert "image in registry: unknown" in approval_message(world)
    assert "could not reach the registry at" in approval_message(world)
    assert "answered 503" in approval_message(world)


def test_going_back_lists_the_commits_taken_out(world: World) -> None:
    ask(world, "deploy checkout 1.4.2 to staging")
    ask(world, "deploy checkout 1.4.1 to staging")
    text = approval_message(world)
    assert "4 commits taken out (going back)" in text


def test_an_image_pushed_again_after_the_approval_does_not_run(world: World) -> None:
    green(world)
    ask(world, "deploy checkout 1.4.2 to production")
    row = last_request(world)
    assert row is not None
    world.registry.push("shop/checkout", "1.4.2-rebuilt")
    world.registry.state.repositories["shop/checkout"]["1.4.2"] = world.registry.state.repositories["shop/checkout"]["1.4.2-rebuilt"]
    approve(world, row, BOB)
    row = last_request(world)
    assert row is not None
    assert row.state == RequestState.NOT_STARTED
    assert "image shop/checkout:1.4.2 was pushed again since the approval" in (row.result or "")
    assert world.kube.deployment("demo-production", "shop", "checkout")["spec"]["template"]["spec"]["containers"][0]["image"] == (
        f"{IMAGE}:1.4.1"
    ), "nothing was deployed"
