"""The gitops backend against real git repositories (file://) and the fake Argo CD API over HTTP.

The repository is made by the real ``git`` CLI; opsbot reads and pushes with dulwich; Argo CD
is the fake in ``fakes/argocd``, whose apps move one stage per read, so no test sleeps.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from bot.backends import Backends
from bot.backends.gitops.change_actions import GitopsRollback, Rollback, RollbackArgs, SetImage, SetImageArgs, plan_set_image
from bot.backends.gitops.commit_messages import trailers
from bot.backends.gitops.delivery import deliver
from bot.backends.gitops.repository import BranchMoved
from bot.backends.gitops.status import Status, StatusArgs
from bot.backends.gitops.sync import Sync, SyncArgs
from bot.catalog.actions import StepContext
from bot.catalog.config import ArgoCdSync, Environment, GitopsSync, GitopsTarget, OpsbotConfig, Service
from bot.errors import ActionFailed
from bot.service_health import TargetRef
from bot.settings import Settings
from bot.watch.digests import gather_health
from fakes.argocd import FakeApplication, FakeArgoCd
from tests.integration.gitops_support import KUSTOMIZATION, VALUES, Origin, git, make_origin

PATH = "apps/checkout/production/kustomization.yaml"
FAST = SyncArgs(poll_seconds=0.001)
TOKEN = "argocd-secret-token"


@pytest.fixture
def origin(tmp_path: Path) -> Origin:
    return make_origin(tmp_path, {PATH: KUSTOMIZATION, "charts/checkout/values.yaml": VALUES})


@pytest.fixture
def argocd(origin: Origin) -> Iterator[FakeArgoCd]:
    fake = FakeArgoCd(token=TOKEN)
    fake.add_app(FakeApplication("shop-checkout", str(origin.bare), PATH, broken_images={'newTag: "9.9.9-broken"'}))
    fake.add_app(FakeApplication("shop-cart", str(origin.bare), PATH))
    fake.tokens["cart-only-token"] = {"shop-cart"}
    with fake:
        fake.apps["shop-checkout"].synced_revision = origin.head()
        yield fake


def target_for(origin: Origin, argocd: FakeArgoCd | None, **changes: Any) -> GitopsTarget:
    sync = GitopsSync(argocd=ArgoCdSync(server=argocd.url, app="shop-checkout")) if argocd else GitopsSync()
    values: dict[str, Any] = {"repo": origin.url, "branch": "main", "path": PATH, "kustomize_image": "registry.example.com/shop/checkout"}
    values["sync"] = sync
    values.update(changes)
    return GitopsTarget(**values)


@pytest.fixture
def make_ctx(tmp_path: Path) -> Iterator[Callable[..., StepContext]]:
    made: list[Backends] = []

    def build(target: GitopsTarget, *, argocd_token: str = TOKEN, progress: list[str] | None = None) -> StepContext:
        settings = Settings(
            OPSBOT_ARGOCD_TOKEN=SecretStr(argocd_token), OPSBOT_GIT_AUTHOR_NAME="opsbot", OPSBOT_GIT_AUTHOR_EMAIL="opsbot@example.com",
            OPSBOT_GIT_CACHE_DIR=tmp_path / "cache",
        )  # fmt: skip
        config = OpsbotConfig(services={"checkout": Service(environments={"production": Environment(gitops=target)})})
        backends = Backends(config, settings)
        made.append(backends)
        return StepContext(
            request_id=12, service="checkout", env="production", target=target, actor_id="U111", actor_name="alice",
            backends=backends, progress=(progress if progress is not None else []).append, cancel_event=threading.Event(),
            deadline=time.monotonic() + 30, runbook="deploy", approvers=(("U222", "bob"),),
        )  # fmt: skip

    yield build
    for backends in made:
        backends.gitops.close()


def test_the_plan_is_the_diff_of_one_line_and_the_branch_head(
    origin: Origin, argocd: FakeArgoCd, make_ctx: Callable[..., StepContext]
) -> None:
    target = target_for(origin, argocd)
    plan = [change.as_dict() for change in SetImage().plan(make_ctx(target), SetImageArgs(tag="1.4.2"))]

    image, branch = plan
    assert (image["before"], image["after"]) == ("registry.example.com/shop/checkout:1.4.1", "registry.example.com/shop/checkout:1.4.2")
    diff = str(image["detail"])
    assert '-    newTag: "1.4.1"  # deployed by opsbot' in diff and '+    newTag: "1.4.2"  # deployed by opsbot' in diff
    assert [line for line in diff.splitlines() if line.startswith(("+", "-")) and not line.startswith(("+++", "---"))] == [
        '-    newTag: "1.4.1"  # deployed by opsbot',
        '+    newTag: "1.4.2"  # deployed by opsbot',
    ]
    assert branch == {"field": "branch main head", "before": origin.head()[:7], "after": "new commit"}


def test_deploy_commits_with_the_story_and_argo_cd_syncs_it_healthy(
    origin: Origin, argocd: FakeArgoCd, make_ctx: Callable[..., StepContext]
) -> None:
    target = target_for(origin, argocd)
    progress: list[str] = []
    ctx = make_ctx(target, progress=progress)
    before = origin.head()

    committed = SetImage().run(ctx, SetImageArgs(tag="1.4.2"))
    synced = Sync().run(ctx, FAST)

    head = origin.head()
    assert head != before and committed.data["commit"] == head
    assert origin.show(PATH) == KUSTOMIZATION.replace('newTag: "1.4.1"', 'newTag: "1.4.2"')
    message = origin.message()
    assert message.splitlines()[0] == "deploy checkout 1.4.2 to production (opsbot request #12)"
    assert trailers(message) == {
        "Requested-by": ["alice (Slack U111)"],
        "Approved-by": ["bob (Slack U222)"],
        "Opsbot-Request": ["12"],
        "Opsbot-Target": ["checkout/production"],
    }
    assert origin.author() == "opsbot <opsbot@example.com>|opsbot <opsbot@example.com>"
    assert TOKEN not in message
    assert argocd.apps["shop-checkout"].sync_requests == [{"revision": head, "prune": False, "dryRun": False}]
    assert synced.data == {"synced_revision": head}
    assert "Synced" in synced.summary and "Healthy" in synced.summary
    assert any("Progressing" in line for line in progress)


def test_a_push_by_someone_else_after_the_plan_is_refused_and_nothing_is_pushed(
    origin: Origin, argocd: FakeArgoCd, make_ctx: Callable[..., StepContext]
) -> None:
    ctx = make_ctx(target_for(origin, argocd))
    change = plan_set_image(ctx, "1.4.2")
    theirs = origin.colleague_pushes("apps/checkout/production/replicas.yaml", "replicas: 5\n")

    with pytest.raises(BranchMoved, match="moved since the plan"):
        deliver(ctx, change, "deploy checkout 1.4.2 to production (opsbot request #12)\n")

    assert origin.head() == theirs
    assert 'newTag: "1.4.1"' in origin.show(PATH)


def test_a_degraded_app_fails_the_sync_and_the_automatic_rollback_reverts_and_syncs_back(
    origin: Origin, argocd: FakeArgoCd, make_ctx: Callable[..., StepContext]
) -> None:
    ctx = make_ctx(target_for(origin, argocd))
    support = GitopsRollback(poll_seconds=0.001)
    point = support.capture(ctx)
    SetImage().run(ctx, SetImageArgs(tag="9.9.9-broken"))
    broken = origin.head()

    with pytest.raises(ActionFailed, match=r"Degraded.*exceeded its progress deadline"):
        Sync().run(ctx, FAST)
    restored = support.restore(ctx, point)

    assert 'newTag: "1.4.1"' in origin.show(PATH)
    message = origin.message()
    assert message.startswith('Revert "deploy checkout 9.9.9-broken to production (opsbot request #12)"')
    assert trailers(message)["Opsbot-Reverts"] == [broken]
    app = argocd.apps["shop-checkout"]
    assert app.synced_revision == origin.head() and app.health == "Healthy"
    assert restored.data["synced_revision"] == origin.head()


def test_a_failed_sync_operation_is_a_failure_with_argo_cds_message(
    origin: Origin, argocd: FakeArgoCd, make_ctx: Callable[..., StepContext]
) -> None:
    argocd.apps["shop-checkout"].fail_next_sync = 'Deployment.apps "checkout" is invalid: spec.template: admission webhook denied'
    ctx = make_ctx(target_for(origin, argocd))
    SetImage().run(ctx, SetImageArgs(tag="1.4.2"))

    with pytest.raises(ActionFailed, match=r"sync of [0-9a-f]{7} failed: one or more objects failed to apply.*admission webhook"):
        Sync().run(ctx, FAST)


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("wrong-token", r"refused opsbot's token \(401: invalid session"),
        ("cart-only-token", r"refused opsbot's token \(403: permission denied"),
    ],
)
def test_argo_cd_refusing_the_token_is_a_clear_failure(
    origin: Origin, argocd: FakeArgoCd, make_ctx: Callable[..., StepContext], token: str, expected: str
) -> None:
    ctx = make_ctx(target_for(origin, argocd), argocd_token=token)
    with pytest.raises(ActionFailed, match=expected) as caught:
        Sync().run(ctx, FAST)
    assert token not in caught.value.user_message


def test_rollback_reverts_opsbots_last_change_then_the_one_before(origin: Origin, make_ctx: Callable[..., StepContext]) -> None:
    ctx = make_ctx(target_for(origin, None))
    SetImage().run(ctx, SetImageArgs(tag="1.4.2"))
    origin.colleague_pushes("apps/checkout/production/replicas.yaml", "replicas: 5\n")
    SetImage().run(make_ctx(target_for(origin, None)), SetImageArgs(tag="1.4.3"))

    plan = Rollback().plan(make_ctx(target_for(origin, None)), RollbackArgs())
    Rollback().run(make_ctx(target_for(origin, None)), RollbackArgs())
    after_first = origin.show(PATH)
    Rollback().run(make_ctx(target_for(origin, None)), RollbackArgs())

    assert (plan[0].before, plan[0].after) == ("registry.example.com/shop/checkout:1.4.3", "registry.example.com/shop/checkout:1.4.2")
    assert 'newTag: "1.4.2"' in after_first
    assert origin.show(PATH) == KUSTOMIZATION
    assert origin.show("apps/checkout/production/replicas.yaml") == "replicas: 5\n"


def test_rollback_at_a_commit_restores_the_file_as_it_was_there(origin: Origin, make_ctx: Callable[..., StepContext]) -> None:
    first = origin.head()
    SetImage().run(make_ctx(target_for(origin, None)), SetImageArgs(tag="1.4.2"))

    result = Rollback().run(make_ctx(target_for(origin, None)), RollbackArgs(commit=first[:9]))

    assert origin.show(PATH) == KUSTOMIZATION
    assert origin.message().startswith(f"restore {PATH} of checkout in production as at {first[:12]}")
    assert "restored the file" in result.summary


def test_a_helm_values_field_changes_alone_keeping_comments_and_order(origin: Origin, make_ctx: Callable[..., StepContext]) -> None:
    target = target_for(origin, None, path="charts/checkout/values.yaml", kustomize_image=None, field="image.tag")
    SetImage().run(make_ctx(target), SetImageArgs(tag="1.4.2"))

    assert origin.show("charts/checkout/values.yaml") == VALUES.replace("tag: 1.4.1   #", "tag: 1.4.2   #")
    status = Status().run(make_ctx(target), StatusArgs())
    assert status.data["tag"] == "1.4.2"
    assert status.summary.startswith(f"image registry.example.com/shop/checkout:1.4.2 at main@{origin.head()[:7]}")


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"path": "apps/checkout/prod/kustomization.yaml"}, "there is no file apps/checkout/prod/kustomization.yaml on branch main"),
        ({"branch": "release"}, r"branch release does not exist in file://.* \(branches: main\)"),
        ({"kustomize_image": "registry.example.com/shop/payments"}, "no images: entry named registry.example.com/shop/payments"),
    ],
)
def test_a_wrong_path_branch_or_image_is_a_clear_message_at_plan_time(
    origin: Origin, make_ctx: Callable[..., StepContext], changes: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ActionFailed, match=expected):
        SetImage().plan(make_ctx(target_for(origin, None, **changes)), SetImageArgs(tag="1.4.2"))


def test_an_unreachable_repository_is_a_clear_message_at_plan_time(tmp_path: Path, make_ctx: Callable[..., StepContext]) -> None:
    target = GitopsTarget(repo=f"file://{tmp_path}/nowhere.git", path=PATH, kustomize_image="registry.example.com/shop/checkout")
    with pytest.raises(ActionFailed, match=f"cannot fetch from file://{tmp_path}/nowhere.git"):
        SetImage().plan(make_ctx(target), SetImageArgs(tag="1.4.2"))


def test_status_shows_the_tag_in_the_file_and_the_apps_sync_and_health(
    origin: Origin, argocd: FakeArgoCd, make_ctx: Callable[..., StepContext]
) -> None:
    result = Status().run(make_ctx(target_for(origin, argocd)), StatusArgs())
    head = origin.head()[:7]
    assert result.summary == f"image registry.example.com/shop/checkout:1.4.1 at main@{head}; Argo CD Synced/Healthy at {head}"


def test_the_digest_sees_the_tag_the_short_sha_and_a_degraded_app(
    origin: Origin, argocd: FakeArgoCd, make_ctx: Callable[..., StepContext]
) -> None:
    ctx = make_ctx(target_for(origin, argocd))
    ref = TargetRef("checkout", "production")
    healthy = gather_health(ctx.backends, [(ref, ctx.target)])[0]
    SetImage().run(ctx, SetImageArgs(tag="9.9.9-broken"))
    with pytest.raises(ActionFailed):
        Sync().run(ctx, FAST)
    degraded = gather_health(ctx.backends, [(ref, ctx.target)])[0]

    first = git("--git-dir", str(origin.bare), "rev-parse", "main~1")[:7]
    assert (healthy.state, healthy.version, healthy.revision) == ("healthy", "1.4.1", first)
    assert (degraded.state, degraded.version, degraded.revision) == ("degraded", "9.9.9-broken", origin.head()[:7])
    assert degraded.details == {"sync": "Synced", "health": "Degraded"}
