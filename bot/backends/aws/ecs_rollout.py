"""Is an ECS rollout done? A pure decision over one ``describe_services`` service dict.

Kept apart from the API calls (as kubectl keeps ``rollout_status.go`` apart) so it can be
tested on recorded status sequences, including what moto cannot produce: a rollout that
progresses over time and a deployment circuit breaker that marks it FAILED.

The rules:

- the deployment we track (the one ``update_service`` returned, else the PRIMARY one)
  with ``rolloutState`` FAILED → failed, with ``rolloutStateReason`` (circuit breaker);
- that deployment no longer PRIMARY → failed: ECS rolled back or someone deployed over it;
- ``rolloutState`` COMPLETED and running = desired (for the deployment and the service)
  → done; IN_PROGRESS → in progress (``3/6 tasks running on checkout:42``);
- no ``rolloutState`` (services without the circuit breaker, older APIs): done when there
  is exactly one deployment and running = desired;
- no deployments at all (CODE_DEPLOY/EXTERNAL controllers): done when running = desired.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from mypy_boto3_ecs.type_defs import DeploymentTypeDef, ServiceTypeDef

RolloutState = Literal["done", "in_progress", "failed"]


@dataclass(frozen=True)
class RolloutStatus:
    """Where a rollout stands; ``text`` is what the user sees while waiting."""

    state: RolloutState
    running: int
    desired: int
    pending: int
    task_definition: str
    deploying: bool
    reason: str | None = None
    older_tasks: int = 0

    @property
    def counts(self) -> str:
        """``6/6 tasks running``: for summaries, which already name the revision."""
        return f"{self.running}/{self.desired} tasks running"

    @property
    def text(self) -> str:
        text = f"{self.counts} on {self.task_definition}"
        if self.older_tasks:
            text += f", {self.older_tasks} still on older revisions"
        return text


def rollout_status(service: ServiceTypeDef, deployment_id: str | None = None) -> RolloutStatus:
    """Decide done / in progress / failed for ``service`` (see the module docstring)."""
    deployments = service.get("deployments", [])
    if not deployments:
        return _without_deployments(service)
    tracked = _tracked_deployment(deployments, deployment_id)
    if tracked is None:
        return _failed(service, _primary(deployments), "the deployment being watched is gone; another one replaced it")
    counts = _counts(service, tracked, deployments)
    rollout = tracked.get("rolloutState")
    if rollout == "FAILED":
        return _with(counts, "failed", reason=tracked.get("rolloutStateReason") or "the deployment failed")
    if tracked.get("status") != "PRIMARY":
        primary = _primary(deployments)
        return _with(counts, "failed", reason=f"ECS moved on to {short_task_definition(primary.get('taskDefinition'))}")
    # Without a circuit breaker there is no rolloutState: one deployment left means done.
    settled = rollout == "COMPLETED" if rollout is not None else len(deployments) == 1
    return _with(counts, "done" if settled and _steady(service, tracked) else "in_progress")


def short_task_definition(arn: str | None) -> str:
    """``arn:aws:ecs:…:task-definition/checkout:42`` → ``checkout:42``."""
    if not arn:
        return "(none)"
    return arn.rsplit("/", 1)[-1]


def family_and_revision(arn: str) -> tuple[str, int]:
    """``…/checkout:42`` → ``("checkout", 42)``."""
    family, _, revision = short_task_definition(arn).rpartition(":")
    return family, int(revision)


def primary_deployment(service: ServiceTypeDef) -> DeploymentTypeDef | None:
    deployments = service.get("deployments", [])
    return _primary(deployments) if deployments else None


@dataclass(frozen=True)
class _Counts:
    running: int
    desired: int
    pending: int
    task_definition: str
    deploying: bool
    older_tasks: int


def _with(counts: _Counts, state: RolloutState, *, reason: str | None = None) -> RolloutStatus:
    return RolloutStatus(
        state=state,
        running=counts.running,
        desired=counts.desired,
        pending=counts.pending,
        task_definition=counts.task_definition,
        deploying=counts.deploying,
        reason=reason,
        older_tasks=counts.older_tasks,
    )


def _counts(service: ServiceTypeDef, tracked: DeploymentTypeDef, deployments: list[DeploymentTypeDef]) -> _Counts:
    others = [d for d in deployments if d is not tracked]
    return _Counts(
        running=tracked.get("runningCount", 0),
        desired=tracked.get("desiredCount", service.get("desiredCount", 0)),
        pending=tracked.get("pendingCount", 0),
        task_definition=short_task_definition(tracked.get("taskDefinition") or service.get("taskDefinition")),
        deploying=tracked.get("rolloutState") == "IN_PROGRESS" or bool(others),
        older_tasks=sum(d.get("runningCount", 0) for d in others),
    )


def _steady(service: ServiceTypeDef, deployment: DeploymentTypeDef) -> bool:
    """Running equals desired both for the deployment and for the service as a whole."""
    deployment_ok = deployment.get("runningCount", 0) == deployment.get("desiredCount", 0)
    service_ok = service.get("runningCount", 0) == service.get("desiredCount", 0)
    return deployment_ok and service_ok


def _tracked_deployment(deployments: list[DeploymentTypeDef], deployment_id: str | None) -> DeploymentTypeDef | None:
    if deployment_id is None:
        return _primary(deployments)
    return next((d for d in deployments if d.get("id") == deployment_id), None)


def _primary(deployments: list[DeploymentTypeDef]) -> DeploymentTypeDef:
    return next((d for d in deployments if d.get("status") == "PRIMARY"), deployments[0])


def _failed(service: ServiceTypeDef, primary: DeploymentTypeDef, reason: str) -> RolloutStatus:
    return _with(_counts(service, primary, service.get("deployments", [])), "failed", reason=reason)


def _without_deployments(service: ServiceTypeDef) -> RolloutStatus:
    running = service.get("runningCount", 0)
    desired = service.get("desiredCount", 0)
    return RolloutStatus(
        state="done" if running == desired else "in_progress",
        running=running,
        desired=desired,
        pending=service.get("pendingCount", 0),
        task_definition=short_task_definition(service.get("taskDefinition")),
        deploying=False,
    )
