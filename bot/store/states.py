"""The states a request moves through, named once.

pending_approval → approved → running → succeeded | failed | rolled_back | cancelled | interrupted,
or pending_approval → rejected | expired | cancelled, or approved → cancelled. A run that needs no
approval is created ``approved``. Every move is one conditional UPDATE in the store.

How a run ends is named for what happened to the service: ``not_started`` (refused at its start:
the plan went stale, the target was locked, the policy changed; nothing was touched),
``cancelled`` (a person pressed Stop; undone where it could be), ``failed`` (it changed something,
or tried to, and did not finish), ``rolled_back`` (it failed and was undone).
"""

from __future__ import annotations

from enum import StrEnum


class RequestState(StrEnum):
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    INTERRUPTED = "interrupted"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    NOT_STARTED = "not_started"


FINAL_STATES = frozenset(
    {
        RequestState.SUCCEEDED,
        RequestState.FAILED,
        RequestState.ROLLED_BACK,
        RequestState.INTERRUPTED,
        RequestState.REJECTED,
        RequestState.EXPIRED,
        RequestState.CANCELLED,
        RequestState.NOT_STARTED,
    }
)
