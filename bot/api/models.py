"""The API's bodies as pydantic models: the single source of the validation and of ``/api/v1/openapi.json``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ArgValue = str | int | bool


class Body(BaseModel):
    """Request bodies: unknown keys are errors (a typo is refused, never ignored)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class RunbookRequest(Body):
    """``POST /api/v1/requests``: a runbook with its arguments as named values, or as the words a person would type."""

    runbook: str = Field(min_length=1, max_length=64, examples=["deploy"])
    args: dict[str, ArgValue] | None = Field(default=None, examples=[{"service": "checkout", "version": "1.4.2", "env": "production"}])
    text: str | None = Field(default=None, max_length=2_000, examples=["checkout 1.4.2 to production"])
    channel: str = Field(pattern=r"^[CG][A-Z0-9]{2,20}$", description="The Slack channel id the request's message goes to.")

    @model_validator(mode="after")
    def _args_or_text(self) -> RunbookRequest:
        if (self.args is None) == (self.text is None):
            raise ValueError("give exactly one of args (named values) or text (the words after the runbook's name)")
        return self


class Accepted(BaseModel):
    """``202``: the request is handed to opsbot; follow it at ``location``."""

    id: str
    state: Literal["accepted"] = "accepted"
    location: str


class Approval(BaseModel):
    user: str
    decision: str
    at: datetime


class OpsbotRequest(BaseModel):
    """The opsbot request an API request became: what ``/ops show <number>`` shows."""

    number: int
    runbook: str
    service: str
    env: str
    params: dict[str, Any]
    state: str
    plan: list[dict[str, Any]]
    policy: str
    approvals_required: int
    approver_groups: list[str]
    approvals: list[Approval]
    expires_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    result: str | None


class RequestStatus(BaseModel):
    """``GET /api/v1/requests/{id}``: ``state`` is the opsbot request's once it exists, else how the API request ended."""

    id: str
    client: str
    state: str
    detail: str
    created_at: datetime
    request: OpsbotRequest | None


class Problem(BaseModel):
    """RFC 9457 problem details; ``detail`` is opsbot's own message."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None


class Alert(BaseModel):
    """One alert of an Alertmanager notification (webhook payload version 4)."""

    model_config = ConfigDict(extra="allow")

    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime  # noqa: N815 - Alertmanager's own field names
    endsAt: datetime | None = None  # noqa: N815
    generatorURL: str = ""  # noqa: N815
    fingerprint: str = Field(min_length=1, max_length=64)


class AlertmanagerNotification(BaseModel):
    """``POST /api/v1/hooks/alertmanager``: Alertmanager's webhook body, version ``"4"``."""

    model_config = ConfigDict(extra="allow")

    version: Literal["4"]
    status: Literal["firing", "resolved"]
    receiver: str = ""
    groupLabels: dict[str, str] = Field(default_factory=dict)  # noqa: N815
    commonLabels: dict[str, str] = Field(default_factory=dict)  # noqa: N815
    commonAnnotations: dict[str, str] = Field(default_factory=dict)  # noqa: N815
    externalURL: str = ""  # noqa: N815
    alerts: list[Alert] = Field(max_length=1_000)


class IgnoredAlert(BaseModel):
    fingerprint: str
    reason: str


class HookAnswer(BaseModel):
    """What opsbot took from a notification: the alerts it acts on (once each, across replicas) and why it ignored the rest."""

    accepted: list[str]
    ignored: list[IgnoredAlert]
