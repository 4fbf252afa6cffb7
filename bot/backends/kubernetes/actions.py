"""The Kubernetes actions a runbook may name, as the action registry finds them (``ACTIONS``, ``ROLLBACKS``)."""

from __future__ import annotations

from typing import Any

from bot.backends.kubernetes.job_actions import JobStep
from bot.backends.kubernetes.rollout_actions import KubernetesRollback, Rollback, SetImage, WaitRollout
from bot.backends.kubernetes.workload_actions import Restart, Scale, Status
from bot.catalog.actions import Action, RollbackSupport

ACTIONS: list[type[Action[Any]]] = [SetImage, WaitRollout, Rollback, Scale, Restart, Status, JobStep]
ROLLBACKS: list[RollbackSupport] = [KubernetesRollback()]
