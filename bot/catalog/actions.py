"""The action contract: what every runbook step is, opsbot's own and plugins' alike (public and stable).

An ``Action`` is stateless: everything it needs (the target, the backend clients, where to
report progress, when to give up) arrives in a ``StepContext``. That keeps Kubernetes and AWS
calls inside their backends and lets the run engine own timeouts and cancellation. A plugin
(an installed package with an ``opsbot.actions`` entry point, see docs/runbooks.md) subclasses
``Action`` and ``ActionArgs`` from this module; ``opsbot validate`` checks a runbook's
arguments against ``args_model`` and reports mistakes as ``file:line``.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from bot.catalog.config import OpsbotConfig, Target, TargetKind
from bot.catalog.identity import RequesterIdentity
from bot.errors import ActionCancelled, StepTimeout

if TYPE_CHECKING:
    from bot.backends import Backends


class ActionArgs(BaseModel):
    """Base for an action's arguments: unknown keys are errors in ``opsbot validate``."""

    model_config = ConfigDict(extra="forbid", frozen=True)


ArgsT = TypeVar("ArgsT", bound=ActionArgs)


@dataclass(frozen=True)
class Change:
    """One line of a plan: ``image checkout:1.4.1 → checkout:1.4.2``."""

    field: str
    before: str | None
    after: str | None
    detail: str | None = None
    """Longer text shown under the line (a gitops plan's unified diff); part of the plan's hash."""
    context: bool = False
    """A fact about the change rather than a change (the commits it ships, its checks): shown under
    "What's changing", hashed with the plan, and taken from the approved plan when a run re-plans."""
    lines: tuple[str, ...] = ()
    """Lines shown under a context entry (one commit or pull request each, mrkdwn already escaped)."""

    def render(self) -> str:
        before = self.before if self.before is not None else "(none)"
        after = self.after if self.after is not None else "(none)"
        if before == after:
            return f"{self.field} {before} (unchanged)"
        return f"{self.field} {before} → {after}"

    def as_dict(self) -> dict[str, Any]:
        plain: dict[str, Any] = {"field": self.field, "before": self.before, "after": self.after}
        if self.detail is not None:  # only when set, so plans without one hash as they always did
            plain["detail"] = self.detail
        if self.context:
            plain["context"] = True
        if self.lines:
            plain["lines"] = list(self.lines)
        return plain


@dataclass(frozen=True)
class StepResult:
    """What a step did: a one-line summary for the message, details for the thread."""

    summary: str
    details: tuple[str, ...] = ()
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class StepContext:
    """Everything a running step may use; built by the runner per step."""

    request_id: int
    service: str
    env: str
    target: Target
    actor_id: str
    actor_name: str
    backends: Backends
    progress: Callable[[str], None]
    cancel_event: threading.Event
    deadline: float
    rollback_point: dict[str, Any] = field(default_factory=dict)
    runbook: str = ""
    approvers: tuple[tuple[str, str], ...] = ()
    """(user id, name) of the people whose approvals let this run start (gitops commits name them)."""
    notes: dict[str, Any] = field(default_factory=dict)
    """What a step leaves for later steps of the same run (the commit a gitops sync must wait for)."""
    plan_reads: dict[str, Any] = field(default_factory=dict)
    """What the run's plan check read (a backend's key → the object as read), so the rollback point and the
    first change need not read it again. The run engine empties it once a mutating step has run: nothing
    may act on a read from before a change. A step that uses one must send its write against it (a
    precondition), because the object can still change between the check and the write."""
    clock: Callable[[], float] = time.monotonic
    identity: RequesterIdentity | None = None
    """Who the cloud sees: the requester (impersonation, source identity), or None to act as opsbot."""

    def remaining(self) -> float:
        """Seconds left before this step's deadline (never negative)."""
        return max(0.0, self.deadline - self.clock())

    def check(self) -> None:
        """Raise if the run was cancelled or the step is past its deadline."""
        if self.cancel_event.is_set():
            raise ActionCancelled("cancelled")
        if self.clock() >= self.deadline:
            raise StepTimeout("timed out")

    def wait(self, seconds: float) -> None:
        """Sleep between polls, waking at once on cancellation; raise past the deadline."""
        self.check()
        if self.cancel_event.wait(timeout=min(seconds, self.remaining())):
            raise ActionCancelled("cancelled")
        self.check()


class Action(ABC, Generic[ArgsT]):
    """A named step. Subclasses set the class variables and implement ``run`` (and ``plan`` if it changes anything).

    ``name`` is ``<package>.<verb>``; ``target_kind`` is the kind of target it acts on (None: any);
    ``mutating`` steps need the policy's approvals and take the target's lock; ``plan`` must only
    read; ``run`` reports with ``ctx.progress``, waits with ``ctx.wait`` (cancellation and the
    deadline wake it) and raises ``ActionFailed`` / ``TemporaryActionError`` with a message a
    person can act on.
    """

    name: ClassVar[str]
    target_kind: ClassVar[TargetKind | None]
    args_model: ClassVar[type[ActionArgs]]
    mutating: ClassVar[bool] = True
    summary: ClassVar[str]
    cluster_access: ClassVar[tuple[str, ...]] = ()
    """What the step asks of a Kubernetes cluster, as RBAC names it (``patch deployments/scale``): ``can-i`` checks these."""
    url_args: ClassVar[frozenset[str]] = frozenset()
    """Arguments that are URLs: parameters substituted into them are percent-encoded (``runs.steps.render_args``)."""

    @classmethod
    def check_step(cls, args: Mapping[str, Any], config: OpsbotConfig) -> list[tuple[str, str]]:
        """Checks ``opsbot validate`` runs on a step's arguments as written (before parameters are known).

        Returns (argument name, message) pairs; the default checks nothing beyond ``args_model``.
        """
        return []

    def plan(self, ctx: StepContext, args: ArgsT) -> list[Change]:
        """What running this step would change, read without changing anything."""
        return []

    @abstractmethod
    def run(self, ctx: StepContext, args: ArgsT) -> StepResult:
        """Do the step; raise ``ActionFailed`` (or a subclass) with a user message on failure."""


class RollbackSupport(ABC):
    """How ``on_failure: rollback`` undoes a failed run for one kind of target."""

    target_kind: ClassVar[TargetKind]

    @abstractmethod
    def capture(self, ctx: StepContext) -> dict[str, Any]:
        """Record, before the first mutating step, what to return to (JSON-serializable)."""

    @abstractmethod
    def restore(self, ctx: StepContext, point: dict[str, Any]) -> StepResult:
        """Put the target back to ``point`` and wait until it is healthy again."""
