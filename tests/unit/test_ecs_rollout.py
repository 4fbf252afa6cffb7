"""ECS rollout decisions and the wait loop, on status sequences moto cannot produce.

moto does not simulate ECS rollouts over time: its deployments never move from one state
to another, and it has no deployment circuit breaker, so it never reports FAILED. These
tests therefore feed ``describe_services`` service dicts written in the shape of real ECS
responses (fields as in the ECS API reference: ``deployments[].status``, ``rolloutState``,
``rolloutStateReason``, running/desired/pending counts) to the pure decision
(``rollout_status``) and to the wait loop (``wait_for_rollout``). Time is a fake clock
advanced by the waits themselves, so nothing here sleeps or reads the wall clock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, cast

import pytest

from bot.backends import Backends
from bot.backends.aws.ecs import wait_for_rollout
from bot.backends.aws.ecs_rollout import rollout_status
from bot.catalog.actions import StepContext
from bot.catalog.config import EcsTarget, Environment, OpsbotConfig, Service
from bot.errors import ActionCancelled, ActionFailed, StepTimeout

if TYPE_CHECKING:
    from mypy_boto3_ecs.type_defs import ServiceTypeDef

TD = "arn:aws:ecs:eu-west-1:123456789012:task-definition/checkout"
NEW_DEPLOYMENT = "ecs-svc/5093541924539734371"
OLD_DEPLOYMENT = "ecs-svc/0827326513651427193"
WHAT = "ECS service checkout in cluster payments-prod (eu-west-1)"


def deployment(
    id_: str,
    revision: int,
    *,
    status: str = "PRIMARY",
    running: int,
    desired: int = 6,
    pending: int = 0,
    rollout: str | None = "IN_PROGRESS",
    reason: str | None = None,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": id_,
        "status": status,
        "taskDefinition": f"{TD}:{revision}",
        "desiredCount": desired,
        "pendingCount": pending,
        "runningCount": running,
        "failedTasks": 0,
        "launchType": "FARGATE",
    }
    if rollout is not None:
        record["rolloutState"] = rollout
        record["rolloutStateReason"] = reason or f"ECS deployment {id_} {rollout.lower().replace('_', ' ')}."
    return record


def service(*deployments: dict[str, Any], running: int, desired: int = 6, revision: int = 42) -> ServiceTypeDef:
    return cast(
        "ServiceTypeDef",
        {
            "serviceName": "checkout",
            "status": "ACTIVE",
            "desiredCount": desired,
            "runningCount": running,
            "pendingCount": 0,
            "taskDefinition": f"{TD}:{revision}",
            "deployments": list(deployments),
        },
    )


# A deploy of checkout:42 over checkout:41 with the circuit breaker on, as it unfolds.
ROLLING_DEPLOY = [
    service(
        deployment(NEW_DEPLOYMENT, 42, running=0, pending=3),
        deployment(OLD_DEPLOYMENT, 41, status="ACTIVE", running=6, rollout="COMPLETED"),
        running=6,
    ),
    service(
        deployment(NEW_DEPLOYMENT, 42, running=3, pending=3),
        deployment(OLD_DEPLOYMENT, 41, status="ACTIVE", running=3, rollout="COMPLETED"),
        running=6,
    ),
    service(
        deployment(NEW_DEPLOYMENT, 42, running=3, pending=3),
        deployment(OLD_DEPLOYMENT, 41, status="ACTIVE", running=3, rollout="COMPLETED"),
        running=6,
    ),
    service(
        deployment(NEW_DEPLOYMENT, 42, running=6),
        deployment(OLD_DEPLOYMENT, 41, status="ACTIVE", running=2, rollout="COMPLETED"),
        running=8,
    ),
    service(deployment(NEW_DEPLOYMENT, 42, running=6, rollout="COMPLETED"), running=6),
]

CIRCUIT_BREAKER_REASON = "ECS deployment circuit breaker: tasks failed to start. ECS is rolling back to checkout:41."

# The same deploy when checkout:42 cannot start: the breaker trips and ECS rolls back.
TRIPPED_DEPLOY = [
    ROLLING_DEPLOY[0],
    service(
        deployment(NEW_DEPLOYMENT, 42, running=0, pending=1),
        deployment(OLD_DEPLOYMENT, 41, status="ACTIVE", running=6, rollout="COMPLETED"),
        running=6,
    ),
    service(
        deployment("ecs-svc/rollback", 41, running=6, pending=0),
        deployment(NEW_DEPLOYMENT, 42, status="ACTIVE", running=0, rollout="FAILED", reason=CIRCUIT_BREAKER_REASON),
        running=6,
        revision=41,
    ),
]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class SteppingEvent(threading.Event):
    """A cancel event whose waits advance the fake clock instead of sleeping."""

    def __init__(self, clock: FakeClock, *, cancel_on_wait: int | None = None) -> None:
        super().__init__()
        self.clock = clock
        self.cancel_on_wait = cancel_on_wait
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout or 0.0)
        self.clock.now += timeout or 0.0
        if self.cancel_on_wait is not None and len(self.waits) >= self.cancel_on_wait:
            self.set()
        return self.is_set()


def context(event: SteppingEvent, clock: FakeClock, progress: list[str], *, deadline: float = 600.0) -> StepContext:
    target = EcsTarget(region="eu-west-1", cluster="payments-prod", service="checkout")
    config = OpsbotConfig(services={"checkout": Service(environments={"production": Environment(ecs=target)})})
    return StepContext(
        request_id=1,
        service="checkout",
        env="production",
        target=target,
        actor_id="U0123ABC",
        actor_name="alice",
        backends=Backends(config),
        progress=progress.append,
        cancel_event=event,
        deadline=deadline,
        clock=clock,
    )


def replay(sequence: list[ServiceTypeDef]) -> Callable[[], ServiceTypeDef]:
    """A describe function answering with the recorded statuses, then the last one forever."""
    calls: Iterator[ServiceTypeDef] = iter(sequence)
    last = sequence[-1]

    def describe() -> ServiceTypeDef:
        return next(calls, last)

    return describe


# --- the decision --------------------------------------------------------------------


def test_new_deployment_starting_is_in_progress_with_counts_on_the_new_revision() -> None:
    status = rollout_status(ROLLING_DEPLOY[1], NEW_DEPLOYMENT)

    assert status.state == "in_progress"
    assert status.text == "3/6 tasks running on checkout:42, 3 still on older revisions"


def test_all_new_tasks_running_but_old_ones_draining_is_not_done_yet() -> None:
    assert rollout_status(ROLLING_DEPLOY[3], NEW_DEPLOYMENT).state == "in_progress"


def test_completed_with_running_equal_desired_is_done() -> None:
    status = rollout_status(ROLLING_DEPLOY[-1], NEW_DEPLOYMENT)

    assert status.state == "done"
    assert status.text == "6/6 tasks running on checkout:42"


def test_completed_but_fewer_tasks_than_desired_after_a_scale_up_is_in_progress() -> None:
    scaling = service(deployment(NEW_DEPLOYMENT, 42, running=2, desired=6, rollout="COMPLETED"), running=2)

    status = rollout_status(scaling)

    assert status.state == "in_progress"
    assert status.text == "2/6 tasks running on checkout:42"


def test_circuit_breaker_failure_is_failed_with_its_reason() -> None:
    status = rollout_status(TRIPPED_DEPLOY[-1], NEW_DEPLOYMENT)

    assert status.state == "failed"
    assert status.reason == CIRCUIT_BREAKER_REASON


def test_watched_deployment_replaced_by_another_is_failed() -> None:
    replaced = service(deployment("ecs-svc/someone-else", 43, running=1), running=6, revision=43)

    status = rollout_status(replaced, NEW_DEPLOYMENT)

    assert status.state == "failed"
    assert "replaced" in (status.reason or "")


def test_without_circuit_breaker_one_deployment_at_desired_count_is_done() -> None:
    steady = service(deployment(NEW_DEPLOYMENT, 42, running=6, rollout=None), running=6)

    assert rollout_status(steady).state == "done"


def test_without_circuit_breaker_two_deployments_are_still_in_progress() -> None:
    rolling = service(
        deployment(NEW_DEPLOYMENT, 42, running=6, rollout=None),
        deployment(OLD_DEPLOYMENT, 41, status="ACTIVE", running=1, rollout=None),
        running=7,
    )

    status = rollout_status(rolling)

    assert status.state == "in_progress"
    assert status.deploying


def test_service_without_deployments_is_done_when_running_equals_desired() -> None:
    external = cast("ServiceTypeDef", {"serviceName": "checkout", "desiredCount": 2, "runningCount": 2, "deployments": []})

    assert rollout_status(external).state == "done"


# --- the wait loop -------------------------------------------------------------------


def test_wait_reports_progress_only_when_numbers_change_and_backs_off_while_unchanged() -> None:
    clock = FakeClock()
    event = SteppingEvent(clock)
    progress: list[str] = []

    status = wait_for_rollout(
        context(event, clock, progress),
        replay(ROLLING_DEPLOY),
        what=WHAT,
        poll_seconds=5,
        deployment_id=NEW_DEPLOYMENT,
    )

    assert status.state == "done"
    assert progress == [
        "0/6 tasks running on checkout:42, 6 still on older revisions",
        "3/6 tasks running on checkout:42, 3 still on older revisions",
        "6/6 tasks running on checkout:42, 2 still on older revisions",
    ]
    assert event.waits == [5, 5, 7.5, 5]


def test_wait_stops_with_the_circuit_breaker_reason() -> None:
    clock = FakeClock()
    progress: list[str] = []

    with pytest.raises(ActionFailed) as failure:
        wait_for_rollout(
            context(SteppingEvent(clock), clock, progress),
            replay(TRIPPED_DEPLOY),
            what=WHAT,
            poll_seconds=5,
            deployment_id=NEW_DEPLOYMENT,
        )

    assert not isinstance(failure.value, StepTimeout)
    assert failure.value.user_message.startswith(f"rollout of {WHAT} failed: ECS deployment circuit breaker")


def test_wait_stops_at_once_when_the_run_is_cancelled() -> None:
    clock = FakeClock()
    event = SteppingEvent(clock, cancel_on_wait=2)
    describes: list[int] = []
    describe = replay(ROLLING_DEPLOY[:2])

    def counting_describe() -> ServiceTypeDef:
        describes.append(1)
        return describe()

    with pytest.raises(ActionCancelled):
        wait_for_rollout(context(event, clock, []), counting_describe, what=WHAT, poll_seconds=5, deployment_id=NEW_DEPLOYMENT)

    assert len(describes) == 2


def test_wait_past_the_deadline_is_a_step_timeout_saying_where_it_stood() -> None:
    clock = FakeClock()
    event = SteppingEvent(clock)

    with pytest.raises(StepTimeout) as timeout:
        wait_for_rollout(
            context(event, clock, [], deadline=12.0),
            replay(ROLLING_DEPLOY[:2]),
            what=WHAT,
            poll_seconds=5,
            deployment_id=NEW_DEPLOYMENT,
        )

    assert timeout.value.user_message == (f"gave up waiting for {WHAT}: still 3/6 tasks running on checkout:42, 3 still on older revisions")
    assert event.waits == [5, 5, 2]  # the last pause is cut short at the deadline
