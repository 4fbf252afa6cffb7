"""A file change from plan to pushed commit: what the approver sees, and how it reaches the branch.

The plan is the unified diff plus ``branch main abc1234 → new commit``. The branch head is part
of the plan's hash, so a push by someone else between approval and run changes the plan and the
run refuses as stale (the engine re-plans before the first step); the push itself is a
compare-and-swap on that same head, which closes the last gap between re-plan and push.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.backends.gitops.commit_messages import Story, subject_of
from bot.backends.gitops.edits import EditError, ImageValue, read_image, unified_diff
from bot.backends.gitops.repository import GitRemote
from bot.catalog.actions import Change, StepContext
from bot.catalog.config import GitopsTarget
from bot.errors import ActionFailed

NEW_COMMIT = "new commit"


def gitops_target(ctx: StepContext) -> GitopsTarget:
    if not isinstance(ctx.target, GitopsTarget):
        raise ActionFailed(f"this step needs a gitops target, but {ctx.service}/{ctx.env} is {ctx.target.describe()}")
    return ctx.target


def remote_of(ctx: StepContext) -> GitRemote:
    return ctx.backends.gitops.remote(gitops_target(ctx))


def story_of(ctx: StepContext) -> Story:
    return Story(ctx.request_id, ctx.service, ctx.env, (ctx.actor_id, ctx.actor_name), ctx.approvers)


@dataclass(frozen=True)
class FileChange:
    """The file at the branch head and as opsbot would write it."""

    head: str
    before: str
    after: str
    image_before: ImageValue
    image_after: ImageValue

    @property
    def unchanged(self) -> bool:
        return self.before == self.after

    def plan(self, target: GitopsTarget) -> list[Change]:
        diff = None if self.unchanged else unified_diff(self.before, self.after, target.path)
        image = Change("image", self.image_before.image, self.image_after.image, detail=diff)
        branch = Change(f"branch {target.branch} head", self.head[:7], self.head[:7] if self.unchanged else NEW_COMMIT)
        return [image, branch]


def read_head(ctx: StepContext) -> tuple[str, str]:
    """(head commit, file text) of the target's branch, fetched now; a missing file is a clear error."""
    target = gitops_target(ctx)
    remote = remote_of(ctx)
    head = remote.fetch(target.branch)
    text = remote.read(head, target.path)
    if text is None:
        raise ActionFailed(f"there is no file {target.path} on branch {target.branch} of {target.repo} (at {head[:7]})")
    return head, text


def file_change(target: GitopsTarget, head: str, before: str, after: str) -> FileChange:
    try:
        return FileChange(head, before, after, read_image(before, target), read_image(after, target))
    except EditError as error:
        raise ActionFailed(str(error)) from None


@dataclass(frozen=True)
class Delivery:
    """Where the change landed: the commit on the branch (a merge commit in PR mode) and the PR's URL."""

    commit: str
    pull_request: str | None = None

    def data(self) -> dict[str, Any]:
        return {"commit": self.commit, **({"pull_request": self.pull_request} if self.pull_request else {})}


def deliver(ctx: StepContext, change: FileChange, message: str) -> Delivery:
    """Commit ``change`` on its head and push it (``mode: commit``) or merge it through a pull request."""
    target = gitops_target(ctx)
    remote = remote_of(ctx)
    identity = ctx.backends.gitops.identity
    new = remote.commit_file(parent=change.head, path=target.path, text=change.after, message=message, identity=identity)
    ctx.check()
    if target.mode == "commit":
        remote.push(target.branch, old=change.head, new=new)
        ctx.progress(f"pushed {new[:7]} to {target.branch}")
        return Delivery(new)
    return _through_pull_request(ctx, target, remote, new, message)


def _through_pull_request(ctx: StepContext, target: GitopsTarget, remote: GitRemote, new: str, message: str) -> Delivery:
    """Push a branch, open the PR, then merge it (``merge: opsbot``) or wait for a person to (``merge: wait``).

    ``merge: opsbot`` is the default: the policy's approvers have already approved this exact diff
    in chat (hash-bound and audited), so asking again in GitHub would gate twice and hold the
    target's lock for an unknown time. The merge names the approved head (``sha``), so GitHub
    refuses (409) if anything was pushed to the PR branch meanwhile. ``merge: wait`` is for
    repositories whose branch protection demands a GitHub review.
    """
    github = ctx.backends.gitops.github(target)
    branch = f"opsbot/request-{ctx.request_id}-{new[:7]}"
    remote.push(branch, old=None, new=new)
    subject = subject_of(message)
    body = message.partition("\n\n")[2]
    pull = github.create_pull(title=subject, body=body, head=branch, base=target.branch)
    number, url = int(pull["number"]), str(pull.get("html_url") or "")
    ctx.progress(f"opened pull request {url}")
    if target.pull_request.merge == "opsbot":
        merged = github.merge(number, sha=new, method=target.pull_request.method, title=f"{subject} (#{number})", message=body)
        if not merged.get("merged"):
            raise ActionFailed(f"GitHub did not merge {url}: {merged.get('message') or 'no reason given'}")
        ctx.progress(f"merged {url}")
        return Delivery(str(merged["sha"]), url)
    ctx.progress(f"waiting for a person to merge {url}")
    while True:
        found = github.pull(number)
        if found.get("merged"):
            return Delivery(str(found.get("merge_commit_sha")), url)
        if found.get("state") == "closed":
            raise ActionFailed(f"pull request {url} was closed without being merged; nothing was deployed")
        ctx.wait(5.0)
