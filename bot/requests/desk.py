"""What the request wing's handlers work with, built once per process by the wiring."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from bot.backends import Backends
from bot.catalog.catalog import Catalog
from bot.catalog.identity import IdentityMap
from bot.messages import Notifier
from bot.requests.board import RequestBoard
from bot.requests.gate import Gate
from bot.requests.groups import GroupDirectory
from bot.store.audit_writer import AuditWriter
from bot.store.database import Database
from bot.watch.digests import Digests
from bot.watch.incidents import IncidentWatch
from bot.watch.insights_service import Insights


@dataclass(frozen=True)
class Desk:
    """The catalog, the database, the policy gate, the board that draws requests, and the watch services (digests, incidents, insights)."""

    catalog: Catalog
    database: Database
    groups: GroupDirectory
    gate: Gate
    board: RequestBoard
    notifier: Notifier
    audit_writer: AuditWriter
    digests: Digests
    incidents: IncidentWatch
    insights: Insights
    clock: Callable[[], datetime]
    identities: IdentityMap | None = None
    """Who requests act as in the clouds (``identity:``); None acts as opsbot everywhere."""
    backends: Backends | None = None
    """For read-only built-ins that ask a cloud (``can-i``)."""
