"""The gitops actions a runbook may name, as the action registry finds them (``ACTIONS``, ``ROLLBACKS``)."""

from __future__ import annotations

from typing import Any

from bot.backends.gitops.change_actions import GitopsRollback, Rollback, SetImage
from bot.backends.gitops.status import Status
from bot.backends.gitops.sync import Sync
from bot.catalog.actions import Action, RollbackSupport

ACTIONS: list[type[Action[Any]]] = [SetImage, Sync, Rollback, Status]
ROLLBACKS: list[RollbackSupport] = [GitopsRollback()]
