"""Backend-neutral health of one service in one environment.

Backends produce these in bulk (one list call per namespace or per ten ECS services),
and the digest and the health watch read them without knowing which backend spoke.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

HealthState = Literal["healthy", "progressing", "degraded", "failed", "unknown"]


@dataclass(frozen=True)
class ServiceHealth:
    """A snapshot of a service/env as the digest and the incident watch need it."""

    service: str
    env: str
    target: str
    state: HealthState
    desired: int | None = None
    ready: int | None = None
    updated: int | None = None
    available: int | None = None
    version: str | None = None
    revision: str | None = None
    restarts: int = 0
    reasons: tuple[str, ...] = ()
    details: dict[str, str] = field(default_factory=dict)

    @property
    def is_healthy(self) -> bool:
        return self.state == "healthy"

    def counts(self) -> str:
        """``"4/4 ready"`` or ``"?"`` when the backend could not say."""
        if self.desired is None:
            return "?"
        ready = self.ready if self.ready is not None else self.available
        return f"{ready if ready is not None else '?'}/{self.desired} ready"


@dataclass(frozen=True)
class TargetRef:
    """Which service/env a bulk health query is for."""

    service: str
    env: str
