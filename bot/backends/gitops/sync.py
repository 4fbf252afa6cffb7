"""Make the controller apply a commit and watch it: Argo CD (REST) or Flux (annotations), or nothing.

The commit to wait for is the one an earlier step of the same run delivered (``ctx.notes``);
a run that only syncs waits for the branch head. A few consecutive temporary errors (a restarting
Argo CD server) are ridden out, as ``wait_rollout`` does with the Kubernetes API.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import ClassVar

from pydantic import Field

from bot.backends.gitops.argocd import sync_progress
from bot.backends.gitops.delivery import gitops_target, remote_of
from bot.backends.gitops.flux import flux_progress
from bot.catalog.actions import Action, ActionArgs, StepContext, StepResult
from bot.catalog.config import GitopsTarget, TargetKind
from bot.errors import ActionFailed, StepTimeout, TemporaryActionError

MAX_TEMPORARY_POLL_ERRORS = 3
COMMIT_NOTE = "gitops_commit"
"""``ctx.notes`` key: the commit a gitops step delivered, for the sync step (and the automatic rollback)."""


def wait_for_sync(ctx: StepContext, commit: str, poll_seconds: float) -> StepResult:
    """Ask the controller to sync ``commit`` and wait until it is applied and healthy; raise on failure."""
    target = gitops_target(ctx)
    controller = target.sync.controller
    if controller == "none":
        return StepResult(summary=f"committed {commit[:7]}; no controller to watch (sync: none)", data={"synced_revision": None})
    poll, where = _poller(ctx, target, commit)
    last = ""
    errors = 0
    try:
        while True:
            ctx.check()
            try:
                done, failed, message = poll()
                errors = 0
            except TemporaryActionError as error:
                errors += 1
                if errors > MAX_TEMPORARY_POLL_ERRORS:
                    raise
                ctx.progress(f"{error.user_message} (retrying)")
                ctx.wait(poll_seconds)
                continue
            if failed:
                raise ActionFailed(f"{where} failed to deploy {commit[:7]}: {message}")
            if done:
                return StepResult(summary=f"{where} synced {commit[:7]}: {message}", data={"synced_revision": commit})
            if message != last:
                ctx.progress(message)
                last = message
            ctx.wait(poll_seconds)
    except StepTimeout as error:
        raise StepTimeout(f"{where} did not sync {commit[:7]} in time: {last or 'no status yet'}") from error


def _poller(ctx: StepContext, target: GitopsTarget, commit: str) -> tuple[Callable[[], tuple[bool, bool, str]], str]:
    backend = ctx.backends.gitops
    if target.sync.argocd is not None:
        argocd = backend.argocd(target.sync.argocd)
        _start_argocd_sync(ctx, argocd.sync, commit)

        def poll_argocd() -> tuple[bool, bool, str]:
            found = sync_progress(argocd.application(), commit)
            return found.done, found.failed, found.message

        return poll_argocd, argocd.where
    assert target.sync.flux is not None
    flux = backend.flux(target.sync.flux)
    flux.request_reconcile(
        datetime.now(UTC).isoformat(timespec="microseconds")
    )  # like `flux reconcile` (RFC 3339, sub-second): two requests in one second must both count

    def poll_flux() -> tuple[bool, bool, str]:
        found = flux_progress(flux.read(), commit)
        return found.done, found.failed, found.message

    return poll_flux, flux.where


def _start_argocd_sync(ctx: StepContext, sync: Callable[[str], object], commit: str) -> None:
    """POST the sync; an operation already running (auto-sync got there first) is fine: it is watched instead."""
    try:
        sync(commit)
    except TemporaryActionError:
        raise
    except ActionFailed as error:
        if "already in progress" not in error.user_message:
            raise
        ctx.progress("Argo CD is already syncing; watching that operation")


def delivered_commit(ctx: StepContext) -> str:
    """The commit this run delivered, or the branch head when no step of this run committed."""
    noted = ctx.notes.get(COMMIT_NOTE)
    if isinstance(noted, str):
        return noted
    return remote_of(ctx).head(gitops_target(ctx).branch)


class SyncArgs(ActionArgs):
    poll_seconds: float = Field(default=2, gt=0, le=60)


class Sync(Action[SyncArgs]):
    """Sync the commit through Argo CD or Flux and wait until it is applied and healthy (Degraded is failure)."""

    name: ClassVar[str] = "gitops.sync"
    target_kind: ClassVar[TargetKind | None] = "gitops"
    args_model = SyncArgs
    mutating: ClassVar[bool] = False
    summary: ClassVar[str] = "Sync the new commit (Argo CD or Flux) and wait until it is applied and healthy."

    def run(self, ctx: StepContext, args: SyncArgs) -> StepResult:
        return wait_for_sync(ctx, delivered_commit(ctx), args.poll_seconds)
