"""What a gitops target runs: the image in the file at the branch head, and the controller's sync and health state.

Used by the ``gitops.status`` step and by the digest (``service_health``), so both say the same
thing: ``registry/checkout:1.4.2 at main@abc1234; Argo CD Synced/Healthy at abc1234``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from bot.backends.gitops import GitopsBackend
from bot.backends.gitops.delivery import gitops_target
from bot.backends.gitops.edits import EditError, read_image
from bot.catalog.actions import Action, ActionArgs, StepContext, StepResult
from bot.catalog.config import GitopsTarget, TargetKind
from bot.errors import OpsbotError
from bot.service_health import HealthState, ServiceHealth, TargetRef


@dataclass(frozen=True)
class GitopsState:
    """One target's state, every part optional so one unreachable system does not hide the others."""

    head: str | None
    image: str | None
    tag: str | None
    controller: str
    sync: str | None = None
    health: str | None = None
    revision: str | None = None
    problem: str | None = None

    @property
    def healthy(self) -> bool:
        if self.problem is not None:
            return False
        if self.controller == "none":
            return True
        return self.health in ("Healthy", "True") and (self.revision or "")[:7] == (self.head or "")[:7]

    def summary(self, target: GitopsTarget) -> str:
        where = f"{target.branch}@{(self.head or '?')[:7]}"
        text = f"image {self.image or '?'} at {where}"
        if self.controller == "argocd":
            text += f"; Argo CD {self.sync or '?'}/{self.health or '?'} at {(self.revision or '?')[:7]}"
        elif self.controller == "flux":
            text += f"; Flux Ready={self.health or '?'} applied {(self.revision or '?')[:7]}"
        if self.problem:
            text += f"; {self.problem}"
        return text


def gitops_state(backend: GitopsBackend, target: GitopsTarget) -> GitopsState:
    """Read the branch, the file and the controller; errors become ``problem`` text."""
    head = image = tag = None
    problems: list[str] = []
    try:
        remote = backend.remote(target)
        head = remote.fetch(target.branch)
        text = remote.read(head, target.path)
        if text is None:
            problems.append(f"no file {target.path}")
        else:
            value = read_image(text, target)
            image, tag = value.image, value.tag
    except (OpsbotError, EditError) as error:
        problems.append(error.user_message if isinstance(error, OpsbotError) else str(error))
    sync = health = revision = None
    try:
        if target.sync.argocd is not None:
            status = backend.argocd(target.sync.argocd).application().get("status") or {}
            sync = (status.get("sync") or {}).get("status")
            health = (status.get("health") or {}).get("status")
            revision = (status.get("sync") or {}).get("revision")
        elif target.sync.flux is not None:
            status = backend.flux(target.sync.flux).read().get("status") or {}
            ready: dict[str, Any] = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
            health = ready.get("status")
            revision = str(status.get("lastAppliedRevision") or "").rpartition(":")[2] or None
    except OpsbotError as error:
        problems.append(error.user_message)
    return GitopsState(head, image, tag, target.sync.controller, sync, health, revision, "; ".join(problems) or None)


class StatusArgs(ActionArgs):
    pass


class Status(Action[StatusArgs]):
    """Read-only: the image in the file, the branch head, and the app's sync and health state."""

    name: ClassVar[str] = "gitops.status"
    target_kind: ClassVar[TargetKind | None] = "gitops"
    args_model = StatusArgs
    mutating: ClassVar[bool] = False
    summary: ClassVar[str] = "Show the image in the gitops file and the app's sync and health state."

    def run(self, ctx: StepContext, args: StatusArgs) -> StepResult:
        target = gitops_target(ctx)
        state = gitops_state(ctx.backends.gitops, target)
        return StepResult(
            summary=state.summary(target),
            data={
                "head": state.head,
                "image": state.image,
                "tag": state.tag,
                "sync": state.sync,
                "health": state.health,
                "revision": state.revision,
            },
        )


def gitops_health(backend: GitopsBackend, ref: TargetRef, target: GitopsTarget) -> ServiceHealth:
    """The digest's and health watch's view: the tag in the file as version, the short SHA as revision."""
    state = gitops_state(backend, target)
    if state.problem is not None and state.head is None:
        level: HealthState = "unknown"
    elif state.health in ("Degraded", "False"):
        level = "degraded"
    elif state.healthy:
        level = "healthy"
    elif state.health in ("Missing", "Unknown", None) and state.controller != "none":
        level = "unknown"
    else:
        level = "progressing"
    details = {key: value for key, value in (("sync", state.sync), ("health", state.health)) if value}
    return ServiceHealth(
        service=ref.service, env=ref.env, target=target.describe(), state=level, version=state.tag,
        revision=(state.head or "")[:7] or None, reasons=() if level == "healthy" else (state.summary(target),), details=details,
    )  # fmt: skip
