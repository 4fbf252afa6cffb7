"""Test-controlled misbehaviour: RBAC denials, transport faults, and someone else's change mid-flight.

Both are registries the test (or demo) edits while the server runs, so they
are guarded by their own small locks rather than the store lock: a fault that
hangs a request must never block the controller.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

FAULT_KINDS = ("timeout", "reset")


@dataclass(frozen=True)
class ForbidRule:
    """Deny ``verb`` on ``resource`` (``"deployments"``, ``"deployments/scale"``).

    ``None`` for cluster or namespace means any; ``"*"`` as verb or resource
    matches everything, mirroring RBAC wildcards.
    """

    verb: str
    resource: str
    cluster: str | None = None
    namespace: str | None = None

    def matches(self, verb: str, resource: str, cluster: str, namespace: str | None) -> bool:
        """Whether a request with these attributes is denied by this rule."""
        return (
            self.verb in ("*", verb)
            and self.resource in ("*", resource)
            and self.cluster in (None, cluster)
            and self.namespace in (None, namespace)
        )


class AccessPolicy:
    """Allow-all authorizer with explicit deny rules."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[ForbidRule] = []

    def forbid(self, rule: ForbidRule) -> None:
        """Add a deny rule."""
        with self._lock:
            self._rules.append(rule)

    def clear(self) -> None:
        """Allow everything again."""
        with self._lock:
            self._rules.clear()

    def is_forbidden(self, verb: str, resource: str, cluster: str, namespace: str | None) -> bool:
        """Whether any rule denies this request."""
        with self._lock:
            return any(r.matches(verb, resource, cluster, namespace) for r in self._rules)


DRY_RUN_QUERY = "dryRun="


@dataclass
class Fault:
    """One injected failure.

    ``kind`` is ``"timeout"`` (hold the request for ``hang_seconds`` and then
    drop the connection), ``"reset"`` (drop it at once, no response) or an
    HTTP status code such as ``"500"`` or ``"503"`` (answer with that Status).
    ``remaining`` counts down per matching request; ``None`` never runs out.
    ``during_rollout`` holds the fault back until a rollout has begun: it never hits a dry run,
    and it is armed by the first real PATCH the server receives (which it may hit itself), so
    the reads and dry runs that compute a plan beforehand go through.
    """

    kind: str
    method: str | None = None
    path_contains: str | None = None
    remaining: int | None = 1
    hang_seconds: float = 30.0
    during_rollout: bool = False
    armed: bool = False

    @property
    def status_code(self) -> int | None:
        """The HTTP code for status-code faults, else ``None``."""
        return int(self.kind) if self.kind.isdigit() else None

    def matches(self, method: str, path: str) -> bool:
        """Whether this fault applies to the request."""
        if self.during_rollout and (DRY_RUN_QUERY in path or not self.armed):
            return False
        return (self.method is None or self.method.upper() == method.upper()) and (self.path_contains is None or self.path_contains in path)


def validate_fault_kind(kind: str) -> str:
    """Normalise and check a fault kind, failing fast on typos in tests."""
    normalized = kind.strip().lower()
    if normalized in FAULT_KINDS:
        return normalized
    if normalized.isdigit() and 400 <= int(normalized) <= 599:
        return normalized
    raise ValueError(f"unknown fault kind {kind!r}: use 'timeout', 'reset' or an HTTP code such as '500'")


@dataclass(frozen=True)
class Interposition:
    """Another client's change, made just before the next matching request is served (once).

    It reproduces the race a real cluster allows between a client's read and its write (a
    colleague's ``kubectl set image``, the controller updating the status) without timing
    anything: the test says which request it lands before. Dry runs never match.
    """

    action: Callable[[], None]
    method: str
    path_contains: str

    def matches(self, method: str, path: str) -> bool:
        return self.method.upper() == method.upper() and self.path_contains in path and DRY_RUN_QUERY not in path


class FaultPlan:
    """The queue of faults waiting to hit matching requests, first match wins."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._interpositions: list[Interposition] = []

    def interpose(self, interposition: Interposition) -> None:
        """Queue another client's change."""
        with self._lock:
            self._interpositions.append(interposition)

    def interposed(self, method: str, path: str) -> Callable[[], None] | None:
        """The change to make before this request, consuming it (the first matching one)."""
        with self._lock:
            for interposition in self._interpositions:
                if interposition.matches(method, path):
                    self._interpositions.remove(interposition)
                    return interposition.action
            return None

    def add(self, fault: Fault) -> None:
        """Queue a fault."""
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        """Drop every pending fault and interposed change."""
        with self._lock:
            self._faults.clear()
            self._interpositions.clear()

    def take(self, method: str, path: str) -> Fault | None:
        """Consume one use of the first fault matching this request."""
        with self._lock:
            if method.upper() == "PATCH" and DRY_RUN_QUERY not in path:
                for fault in self._faults:
                    fault.armed = True
            for fault in self._faults:
                if fault.matches(method, path):
                    if fault.remaining is not None:
                        fault.remaining -= 1
                        if fault.remaining <= 0:
                            self._faults.remove(fault)
                    return fault
            return None
