"""Audit event types, the event record, and who acts (a person, or opsbot itself)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bot.messages import API_CLIENT_PREFIX, api_client_of


class EventType(StrEnum):
    """Every kind of audit event; the names are the log's vocabulary, keep them stable."""

    COMMAND_RECEIVED = "command_received"
    COMMAND_REJECTED = "command_rejected"
    DENIED = "denied"
    APPROVAL_REQUESTED = "approval_requested"
    APPROVAL_GIVEN = "approval_given"
    APPROVAL_REFUSED = "approval_refused"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    CANCEL_REQUESTED = "cancel_requested"
    STARTED = "started"
    STEP_STARTED = "step_started"
    STEP_PROGRESS = "step_progress"
    STEP_FINISHED = "step_finished"
    STEP_FAILED = "step_failed"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ROLLBACK_STARTED = "rollback_started"
    ROLLED_BACK = "rolled_back"
    INTERRUPTED = "interrupted"
    NOT_STARTED = "not_started"
    ANSWERED = "answered"
    NOTHING_TO_DO = "nothing_to_do"
    LOCKED = "locked"
    UNLOCKED = "unlocked"
    LOCK_REFUSED = "lock_refused"
    INCIDENT_OPENED = "incident_opened"
    INCIDENT_UPDATED = "incident_updated"  # another alert joined a live incident (not a new outage: insights skip it)
    INCIDENT_ACKNOWLEDGED = "incident_acknowledged"
    INCIDENT_RESOLVED = "incident_resolved"
    DIGEST_POSTED = "digest_posted"
    REPLAY_REJECTED = "replay_rejected"
    AUDIT_KEY_INTRODUCED = "audit_key_introduced"  # the chain is keyed from this row on (bot.audit.chain)
    ACCESS_CHECKED = "access_checked"
    ALERT_RECEIVED = "alert_received"  # an Alertmanager notification (bot.api): how many alerts were news


@dataclass(frozen=True)
class AuditEvent:
    """One thing that happened. Empty strings, not None, for absent text fields."""

    event: EventType
    actor_id: str = ""
    actor_name: str = ""
    channel: str = ""
    request_id: int | None = None
    runbook: str = ""
    service: str = ""
    env: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    outcome: str = ""
    details: dict[str, Any] = field(default_factory=dict)


class ActorKind(StrEnum):
    """Who acts: a person (Slack user id), a program calling the inbound API (``client:<name>``), or opsbot."""

    PERSON = "person"
    CLIENT = "client"
    SYSTEM = "system"


@dataclass(frozen=True)
class Actor:
    """A person acting through a front end (Slack user id and display name), an API client, or opsbot itself.

    An API client's id is ``client:<name>`` wherever a Slack user id would be (requests, audit
    rows): the kind survives a round trip through the database, and no Slack id has a colon, so
    a client can never pass for a person (it is in no approver group and never clicks).
    """

    user_id: str
    name: str

    @classmethod
    def client(cls, name: str) -> Actor:
        return cls(user_id=f"{API_CLIENT_PREFIX}{name}", name=name)

    @property
    def kind(self) -> ActorKind:
        if not self.user_id:
            return ActorKind.SYSTEM
        return ActorKind.CLIENT if api_client_of(self.user_id) is not None else ActorKind.PERSON


SYSTEM = Actor(user_id="", name="opsbot")
"""opsbot acting on its own: starting and finishing runs, expiring requests, the health watch."""
