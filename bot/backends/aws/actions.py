"""The AWS runbook actions and rollback support, as the action registry loads them (``ACTIONS``, ``ROLLBACKS``).

ECS in ``ecs_actions``, Auto Scaling groups in ``asg_actions``.
"""

from __future__ import annotations

from typing import Any

from bot.backends.aws.asg_actions import AsgScale, AsgStatus
from bot.backends.aws.ecs_actions import EcsDeploy, EcsRollback, EcsRollbackAction, EcsScale, EcsStatus
from bot.catalog.actions import Action, RollbackSupport

ACTIONS: list[type[Action[Any]]] = [EcsDeploy, EcsRollbackAction, EcsScale, EcsStatus, AsgScale, AsgStatus]
ROLLBACKS: list[RollbackSupport] = [EcsRollback()]
