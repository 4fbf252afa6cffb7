"""The gitops actions and ``github.workflow_dispatch``, as the action registry finds them (``ACTIONS``, ``ROLLBACKS``)."""

from __future__ import annotations

from typing import Any

from bot.backends.gitops.change_actions import GitopsRollback, Rollback, SetImage
from bot.backends.gitops.status import Status
from bot.backends.gitops.sync import Sync
from bot.backends.gitops.workflow_dispatch import WorkflowDispatch
from bot.catalog.actions import Action, RollbackSupport

ACTIONS: list[type[Action[Any]]] = [SetImage, Sync, Rollback, Status, WorkflowDispatch]
ROLLBACKS: list[RollbackSupport] = [GitopsRollback()]
