"""What the API hands to an executor, and how the executor does it with its core.

The HTTP worker authenticated, checked and recorded the call (``bot.api.app``); the rest needs
the core (backends for the plan, Slack for the message), so it is a job, like a typed command's.
``ApiJobRunner`` settles the API request row with what happened, which ``GET`` then shows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from bot.api.alerts import AlertNotice
from bot.audit.events import Actor, EventType
from bot.audit.factories import actor_event
from bot.errors import OpsbotError, PolicyDenied, report_internal_error
from bot.messages import Message
from bot.requests.front_door import FrontDoor, error_message
from bot.requests.invocation import Invocation
from bot.store import api_requests as api_store
from bot.store.audit_writer import AuditWriter
from bot.store.database import Database
from bot.watch.incidents import IncidentWatch
from commands.parser import CommandRequest

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApiRequestJob:
    """A runbook asked for by a client: ``api_id`` is the id the client was given."""

    api_id: str
    actor: Actor
    channel: str
    text: str
    parsed: CommandRequest


@dataclass(frozen=True)
class AlertJob:
    """The alerts of one Alertmanager notification that name catalog targets."""

    actor: Actor
    alerts: tuple[AlertNotice, ...]
    ignored: int = 0


ApiJob = ApiRequestJob | AlertJob


class ApiHandoff(Protocol):
    """Whatever takes jobs to the core (``bot.serve``'s handoffs); must return at once."""

    def submit(self, job: ApiJob) -> None: ...

    def is_available(self) -> bool: ...


class ApiJobRunner:
    """Does API jobs in the process that owns the core."""

    def __init__(
        self,
        *,
        front_door: FrontDoor,
        incidents: IncidentWatch,
        database: Database,
        audit_writer: AuditWriter,
        clock: Callable[[], datetime],
    ) -> None:
        self._front_door = front_door
        self._incidents = incidents
        self._database = database
        self._audit_writer = audit_writer
        self._clock = clock

    def run(self, job: ApiJob) -> None:
        if isinstance(job, ApiRequestJob):
            self._request(job)
        else:
            self._alerts(job)

    def _request(self, job: ApiRequestJob) -> None:
        answers = _Answers()
        invocation = Invocation(actor=job.actor, channel=job.channel, text=job.text)
        request_id: int | None = None
        try:
            row = self._front_door.request_for_client(invocation, job.parsed, answers)
        except PolicyDenied as denied:
            state, detail = "denied", error_message(denied).text
        except OpsbotError as refused:
            state, detail = "refused", error_message(refused).text
        except Exception:  # noqa: BLE001 - logged with its traceback and an id
            state, detail = "failed", report_internal_error(logger, f"API request {job.api_id} failed")
        else:
            request_id = row.id if row is not None else None
            state = "created" if row is not None else "answered"
            detail = "\n".join(answers.texts)
        try:
            with self._database.transaction() as session:
                api_store.settle(session, job.api_id, state=state, request_id=request_id, detail=detail[:4_000], now=self._clock())
        except Exception:  # noqa: BLE001 - the request itself is recorded and audited; only the API's view of it is lost
            report_internal_error(logger, f"could not record how API request {job.api_id} ended ({state})")

    def _alerts(self, job: AlertJob) -> None:
        news = 0
        for alert in job.alerts:
            try:
                if alert.firing:
                    acted = self._incidents.alert_firing(
                        fingerprint=alert.fingerprint, service=alert.service, env=alert.env, reason=alert.summary,
                        starts_at=alert.starts_at, actor=job.actor,
                    ) is not None  # fmt: skip
                else:
                    acted = self._incidents.alert_resolved(
                        fingerprint=alert.fingerprint, service=alert.service, env=alert.env, summary=alert.summary, actor=job.actor
                    )
            except Exception:  # noqa: BLE001 - one bad alert must not lose the others; Alertmanager repeats it anyway
                report_internal_error(logger, f"alert {alert.fingerprint} for {alert.service}/{alert.env} failed")
                continue
            news += acted
        event = actor_event(
            EventType.ALERT_RECEIVED, job.actor, outcome="received", alerts=len(job.alerts), news=news,
            repeats=len(job.alerts) - news, ignored=job.ignored,
        )  # fmt: skip
        self._audit_writer.append(event)


@dataclass
class _Answers:
    """A client has no private channel: what a person would have been told privately is kept for ``GET``."""

    texts: list[str] = field(default_factory=list)

    def private(self, message: Message) -> None:
        self.texts.append(message.text)
