"""The states a request moves through, named once.

pending_approval → approved → running → succeeded | failed | rolled_back | interrupted,
or pending_approval → rejected | expired | cancelled. A run that needs no approval is
created ``approved``. Every move is one conditional UPDATE in the store.
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


FINAL_STATES = frozenset(
    {
        RequestState.SUCCEEDED,
        RequestState.FAILED,
        RequestState.ROLLED_BACK,
        RequestState.INTERRUPTED,
        RequestState.REJECTED,
        RequestState.EXPIRED,
        RequestState.CANCELLED,
    }
)
