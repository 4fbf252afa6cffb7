"""Eight weeks of made-up delivery history for ``opsbot demo``, so ``/ops insights`` has something to show.

Written through the real chained append, with the events a real run writes, in the order it
writes them, at times in the past: deploys on working days (production ones wait for an
approval), some failing (half of those rolled back automatically), a few rolled back by hand soon
after, and an incident now and then. Deterministic (a fixed seed), so demo transcripts repeat.
The request numbers start at ``FIRST_REQUEST`` so they never meet the ones the demo creates.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from bot.audit.events import SYSTEM, AuditEvent, EventType
from bot.catalog.config import OpsbotConfig
from bot.store import audit as audit_store
from bot.store.database import Database

FIRST_REQUEST = 900_001
DAYS = 60
SEED = 22
PEOPLE = (("U0ALICE", "alice"), ("U0DAVE", "dave"), ("U0BOB", "bob"))


def seed_history(database: Database, config: OpsbotConfig, now: datetime) -> int:
    """Write the history of the ``DAYS`` days before today; returns how many events it wrote."""
    rng = random.Random(SEED)
    story = _History(rng)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    for back in range(DAYS, 0, -1):
        day = today - timedelta(days=back)
        if day.weekday() >= 5:
            continue
        for service, entry in config.services.items():
            for env in entry.environments:
                busy = 3 if env == "staging" else 2
                for _ in range(rng.randint(0, busy)):
                    story.deploy(service, env, day + timedelta(hours=rng.randint(8, 16), minutes=rng.randint(0, 59)))
                if rng.random() < 0.04:
                    story.incident(service, env, day + timedelta(hours=rng.randint(0, 23), minutes=rng.randint(0, 59)))
    groups = sorted(story.groups, key=lambda group: group[0])
    with database.transaction() as session:
        for when, events in groups:
            audit_store.append_events(session, events, when)
    return sum(len(events) for _, events in groups)


class _History:
    """Collects (time, events) groups as opsbot would have written them."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.groups: list[tuple[datetime, list[AuditEvent]]] = []
        self.next_request = FIRST_REQUEST
        self.versions: dict[str, int] = {}

    def deploy(self, service: str, env: str, asked: datetime) -> None:
        rng = self.rng
        self.versions[service] = self.versions.get(service, 0) + 1
        version = f"1.{4 + self.versions[service] // 10}.{self.versions[service] % 10}"
        approved = asked + (timedelta(minutes=rng.randint(1, 45)) if env == "production" else timedelta(0))
        ended = approved + timedelta(seconds=rng.randint(60, 420))
        roll = rng.random()
        end = EventType.SUCCEEDED if roll > 0.12 else (EventType.FAILED if roll > 0.06 else EventType.ROLLED_BACK)
        self._run("deploy", service, env, {"service": service, "version": version, "env": env}, asked, approved, ended, end)
        if end == EventType.FAILED or (end == EventType.SUCCEEDED and rng.random() < 0.05):
            start = ended + timedelta(minutes=rng.randint(3, 40))
            self._run(
                "rollback", service, env, {"service": service, "env": env}, start, start, start + timedelta(minutes=3), EventType.SUCCEEDED
            )

    def incident(self, service: str, env: str, opened: datetime) -> None:
        base: dict[str, Any] = {"actor_id": SYSTEM.user_id, "actor_name": SYSTEM.name, "service": service, "env": env}
        self.groups.append((opened, [AuditEvent(EventType.INCIDENT_OPENED, outcome="open", **base)]))
        resolved = opened + timedelta(minutes=self.rng.randint(8, 90))
        self.groups.append((resolved, [AuditEvent(EventType.INCIDENT_RESOLVED, outcome="resolved", **base)]))

    def _run(
        self,
        runbook: str,
        service: str,
        env: str,
        params: dict[str, Any],
        asked: datetime,
        approved: datetime,
        ended: datetime,
        end: EventType,
    ) -> None:
        request_id = self.next_request
        self.next_request += 1
        person, name = self.rng.choice(PEOPLE)

        def event(kind: EventType, outcome: str, *, by_person: bool = False) -> AuditEvent:
            who = (person, name) if by_person else (SYSTEM.user_id, SYSTEM.name)
            return AuditEvent(
                event=kind, actor_id=who[0], actor_name=who[1], channel="C0OPS", request_id=request_id, runbook=runbook,
                service=service, env=env, params=params, outcome=outcome,
            )  # fmt: skip

        first = [event(EventType.COMMAND_RECEIVED, "received", by_person=True)]
        first.append(
            event(EventType.APPROVAL_REQUESTED if approved > asked else EventType.APPROVED, "pending" if approved > asked else "approved")
        )
        self.groups.append((asked, first))
        middle = [event(EventType.APPROVED, "approved")] if approved > asked else []
        middle += [event(EventType.STARTED, "started"), event(EventType.STEP_STARTED, "started"), event(EventType.STEP_FINISHED, "ok")]
        self.groups.append((approved, middle))
        if end == EventType.ROLLED_BACK:
            self.groups.append((ended - timedelta(seconds=45), [event(EventType.ROLLBACK_STARTED, "started")]))
        self.groups.append((ended, [event(end, str(end))]))
