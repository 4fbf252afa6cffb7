"""Steps that change the file in git: set_image (a deploy), rollback (a revert or a restore), and ``on_failure: rollback``.

Each plans as a fetch plus the edit it would commit, so the approver reads the diff; each
runs by re-reading the branch, committing the same edit and pushing it only onto the head it
planned on. The commit is left in ``ctx.notes`` for the ``gitops.sync`` step that follows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import Field, field_validator

from bot.backends.gitops.commit_messages import Story, deploy_message, restore_message, revert_message, subject_of, trailers
from bot.backends.gitops.delivery import (
    Delivery,
    FileChange,
    deliver,
    file_change,
    gitops_target,
    read_head,
    remote_of,
    story_of,
)
from bot.backends.gitops.edits import EditError, read_image, set_image_tag
from bot.backends.gitops.sync import COMMIT_NOTE, wait_for_sync
from bot.backends.images import check_tag
from bot.catalog.actions import Action, ActionArgs, Change, RollbackSupport, StepContext, StepResult
from bot.catalog.config import TargetKind
from bot.errors import ActionFailed

HISTORY_LIMIT = 200
"""Commits of the file searched for opsbot's last change (``git log -200 -- path``)."""

# --------------------------------------------------------------------------- set_image


class SetImageArgs(ActionArgs):
    tag: str

    @field_validator("tag")
    @classmethod
    def _valid_tag(cls, value: str) -> str:
        return check_tag(value, digest_allowed=True)


def plan_set_image(ctx: StepContext, tag: str) -> FileChange:
    target = gitops_target(ctx)
    head, text = read_head(ctx)
    try:
        after = set_image_tag(text, target, tag)
    except EditError as error:
        raise ActionFailed(str(error)) from None
    return file_change(target, head, text, after)


class SetImage(Action[SetImageArgs]):
    """Change the image tag in the gitops file and commit it (or merge it through a pull request)."""

    name: ClassVar[str] = "gitops.set_image"
    target_kind: ClassVar[TargetKind | None] = "gitops"
    args_model = SetImageArgs
    mutating: ClassVar[bool] = True
    summary: ClassVar[str] = "Commit the new image tag to the gitops repository (the plan is the diff)."

    def plan(self, ctx: StepContext, args: SetImageArgs) -> list[Change]:
        return plan_set_image(ctx, args.tag).plan(gitops_target(ctx))

    def run(self, ctx: StepContext, args: SetImageArgs) -> StepResult:
        change = plan_set_image(ctx, args.tag)
        target = gitops_target(ctx)
        if change.unchanged:
            ctx.notes[COMMIT_NOTE] = change.head
            return StepResult(
                summary=f"{target.path} already has {change.image_after.image}; nothing to commit (branch at {change.head[:7]})",
                data={"commit": change.head, "skipped": True},
            )
        message = deploy_message(story_of(ctx), runbook=ctx.runbook, tag=args.tag)
        delivery = deliver(ctx, change, message)
        return _delivered(ctx, delivery, change, "committed")


def _delivered(ctx: StepContext, delivery: Delivery, change: FileChange, verb: str) -> StepResult:
    ctx.notes[COMMIT_NOTE] = delivery.commit
    target = gitops_target(ctx)
    via = f" via {delivery.pull_request}" if delivery.pull_request else ""
    return StepResult(
        summary=f"{verb} {delivery.commit[:7]} to {target.branch}{via}: image {change.image_before.image} → {change.image_after.image}",
        data={**delivery.data(), "image_before": change.image_before.image, "image_after": change.image_after.image},
    )


# --------------------------------------------------------------------------- rollback


class RollbackArgs(ActionArgs):
    commit: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$")
    """A commit (at least 7 characters) or tag whose version of the file to restore; without it opsbot's last change is reverted."""
    to_revision: int | None = None
    """The shared rollback runbook's Deployment/ECS revision: refused here rather than silently ignored."""


@dataclass(frozen=True)
class RollbackPlan:
    change: FileChange
    message: str
    reverted: str | None


def plan_rollback(ctx: StepContext, commit: str | None) -> RollbackPlan:
    target = gitops_target(ctx)
    head, text = read_head(ctx)
    story = story_of(ctx)
    if commit is not None:
        source = _resolve(ctx, head, commit)
        old = remote_of(ctx).read(source, target.path)
        if old is None:
            raise ActionFailed(f"{target.path} does not exist at {commit}")
        return RollbackPlan(file_change(target, head, text, old), restore_message(story, commit=source, path=target.path), None)
    reverted, subject, image_then = _last_opsbot_change(ctx, head, story)
    try:
        after = set_image_tag(text, target, image_then)
    except EditError as error:
        raise ActionFailed(str(error)) from None
    change = file_change(target, head, text, after)
    message = revert_message(
        story, reverted=reverted, reverted_subject=subject, image_before=change.image_before.image, image_after=change.image_after.image
    )
    return RollbackPlan(change, message, reverted)


def _last_opsbot_change(ctx: StepContext, head: str, story: Story) -> tuple[str, str, str]:
    """(sha, subject, tag before it) of opsbot's newest change to this target that no later commit reverted."""
    target = gitops_target(ctx)
    remote = remote_of(ctx)
    reverted: set[str] = set()
    for logged in remote.history(head, target.path, HISTORY_LIMIT):
        found = trailers(logged.message)
        if story.target not in found.get("Opsbot-Target", []):
            continue
        reverted.update(found.get("Opsbot-Reverts", []))
        if logged.sha in reverted or found.get("Opsbot-Reverts") or not logged.parents:
            continue
        before = remote.read(logged.parents[0], target.path)
        if before is None:
            continue
        try:
            tag = read_image(before, target).tag
        except EditError:
            continue
        if tag:
            return logged.sha, subject_of(logged.message), tag
    raise ActionFailed(
        f"found no change by opsbot to {story.target} in the last {HISTORY_LIMIT} commits of {target.path} that is not reverted "
        "yet; name the commit or tag to restore: `rollback SERVICE in ENV at COMMIT`"
    )


def _resolve(ctx: StepContext, head: str, name: str) -> str:
    """A commit of the file's history (by SHA prefix) or a tag of the remote."""
    target = gitops_target(ctx)
    for logged in remote_of(ctx).history(head, target.path, HISTORY_LIMIT):
        if len(name) >= 7 and logged.sha.startswith(name.lower()):
            return logged.sha
    tag = remote_of(ctx).tag(name)
    if tag is None:
        raise ActionFailed(
            f"{name} is neither a commit of {target.path} on {target.branch} (last {HISTORY_LIMIT}) nor a tag of {target.repo}"
        )
    return tag


class Rollback(Action[RollbackArgs]):
    """Revert opsbot's last change for the service (or restore the file as at a commit or tag)."""

    name: ClassVar[str] = "gitops.rollback"
    target_kind: ClassVar[TargetKind | None] = "gitops"
    args_model = RollbackArgs
    mutating: ClassVar[bool] = True
    summary: ClassVar[str] = "Revert opsbot's last change to the gitops file (or restore it as at a commit or tag)."

    def plan(self, ctx: StepContext, args: RollbackArgs) -> list[Change]:
        if args.to_revision is not None:
            raise ActionFailed(
                f"{ctx.service} in {ctx.env} is a gitops target: it has commits, not numbered revisions; "
                f"name a commit or tag (`rollback {ctx.service} in {ctx.env} at 3f2a9c1`) or leave it out to revert opsbot's last change"
            )
        return plan_rollback(ctx, args.commit).change.plan(gitops_target(ctx))

    def run(self, ctx: StepContext, args: RollbackArgs) -> StepResult:
        plan = plan_rollback(ctx, args.commit)
        if plan.change.unchanged:
            ctx.notes[COMMIT_NOTE] = plan.change.head
            return StepResult(summary=f"skipped: the file already reads {plan.change.image_after.image}", data={"skipped": True})
        delivery = deliver(ctx, plan.change, plan.message)
        verb = f"reverted {plan.reverted[:7]} with" if plan.reverted else "restored the file with"
        return _delivered(ctx, delivery, plan.change, verb)


# --------------------------------------------------------------------------- on_failure: rollback


class GitopsRollback(RollbackSupport):
    """``on_failure: rollback`` for gitops: revert what this run committed, then sync and wait again.

    The revert sets the image back to the tag recorded before the run, on top of whatever the
    branch holds now, so other people's edits to the file since are kept.
    """

    target_kind: ClassVar[TargetKind] = "gitops"

    def __init__(self, poll_seconds: float = 2.0) -> None:
        self.poll_seconds = poll_seconds

    def capture(self, ctx: StepContext) -> dict[str, Any]:
        head, text = read_head(ctx)
        try:
            value = read_image(text, gitops_target(ctx))
        except EditError as error:
            raise ActionFailed(str(error)) from None
        return {"head": head, "tag": value.tag, "image": value.image}

    def restore(self, ctx: StepContext, point: dict[str, Any]) -> StepResult:
        target = gitops_target(ctx)
        committed = ctx.notes.get(COMMIT_NOTE)
        tag = point.get("tag")
        if not isinstance(committed, str) or committed == point.get("head"):
            return StepResult(summary=f"nothing to undo: this run committed nothing to {target.branch}")
        if not isinstance(tag, str):
            raise ActionFailed(f"cannot restore {target.describe()}: no image tag was recorded before the run")
        head, text = read_head(ctx)
        try:
            change = file_change(target, head, text, set_image_tag(text, target, tag))
        except EditError as error:
            raise ActionFailed(str(error)) from None
        logged = next(iter(remote_of(ctx).history(committed, target.path, 1)), None)
        subject = subject_of(logged.message) if logged else committed[:7]
        message = revert_message(
            story_of(ctx), reverted=committed, reverted_subject=subject,
            image_before=change.image_before.image, image_after=change.image_after.image,
        )  # fmt: skip
        delivery = deliver(ctx, change, message)
        reverted = _delivered(ctx, delivery, change, f"reverted {committed[:7]} with")
        synced = wait_for_sync(ctx, delivery.commit, self.poll_seconds)
        return StepResult(
            summary=f"{reverted.summary}; {synced.summary}",
            details=(reverted.summary, synced.summary),
            data={**reverted.data, **synced.data},
        )
