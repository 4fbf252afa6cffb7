"""An API request whose executor died after the ``202``: the client is told, not left polling ``accepted`` for ever.

The HTTP worker records the request and hands it to an executor; if that process dies before
it settles the request (a crash, an OOM kill, a node drained mid-plan), nothing else ever will.
The handoff here is an executor that took the job and then died: it keeps the job and never
runs it. Everything else is the real API over HTTP on a real database.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from bot.api.app import InboundApi
from bot.api.jobs import ApiJob
from bot.serve.wiring import api_body_reader
from bot.store import api_requests as api_store
from bot.store.database import Database
from bot.store.migrate import upgrade
from tests.doubles import FakeClock
from tests.integration.slack_support import CHANNEL, SLACK_TEST_CONFIG, serve_asgi, write_touch_catalog

TOKEN = f"lost-token-{uuid.uuid4().hex}"
CONFIG = SLACK_TEST_CONFIG.replace("allow: {groups: [requesters]}", "allow: {groups: [requesters], clients: [ci]}") + (
    f"api:\n  clients:\n    ci: {{token_sha256: {hashlib.sha256(TOKEN.encode()).hexdigest()}, rate_per_minute: 6000, rate_burst: 100}}\n"
)
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
BODY = json.dumps({"runbook": "touch", "text": "svc v2 in production", "channel": CHANNEL})


class DeadExecutor:
    """Took the job, then its process died: the job is never run, nothing is settled."""

    def __init__(self) -> None:
        self.taken: list[ApiJob] = []

    def submit(self, job: ApiJob) -> None:
        self.taken.append(job)

    def is_available(self) -> bool:
        return True


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[tuple[httpx.Client, FakeClock, Database, DeadExecutor]]:
    catalog = write_touch_catalog(tmp_path, CONFIG)
    database, clock, executor = Database(database_url), FakeClock(), DeadExecutor()
    upgrade(database)
    api = InboundApi(
        config=catalog.config, commands=catalog.commands, vocabulary=catalog.vocabulary, database=database, handoff=executor,
        read_body=api_body_reader(5.0), clock=clock,
    )  # fmt: skip
    with serve_asgi(api.app()) as http:
        yield http, clock, database, executor
    database.dispose()


def test_a_request_no_executor_settled_is_reported_lost_after_its_deadline_with_what_to_do(
    world: tuple[httpx.Client, FakeClock, Database, DeadExecutor],
) -> None:
    http, clock, _, executor = world
    answer = http.post("/requests", content=BODY, headers={**HEADERS, "Idempotency-Key": "lost-1"})
    assert answer.status_code == 202 and len(executor.taken) == 1
    location = f"/requests/{answer.json()['id']}"

    clock.advance(api_store.SETTLE_DEADLINE - timedelta(seconds=1))
    assert http.get(location, headers=HEADERS).json()["state"] == "accepted", "still within the time a plan may take"

    clock.advance(timedelta(seconds=2))
    lost = http.get(location, headers=HEADERS).json()
    assert lost["state"] == "lost"
    assert "opsbot stopped before it finished taking this request" in lost["detail"]
    assert "new Idempotency-Key" in lost["detail"] and f"<#{CHANNEL}>" not in lost["detail"]

    again = http.post("/requests", content=BODY, headers={**HEADERS, "Idempotency-Key": "lost-1"})
    assert again.status_code == 202 and again.json()["id"] == answer.json()["id"], "the same key still names the same (lost) request"
    fresh = http.post("/requests", content=BODY, headers={**HEADERS, "Idempotency-Key": "lost-2"})
    assert fresh.status_code == 202 and fresh.json()["id"] != answer.json()["id"]


def test_an_executor_that_settles_after_the_deadline_still_tells_the_truth(
    world: tuple[httpx.Client, FakeClock, Database, DeadExecutor],
) -> None:
    http, clock, database, _ = world
    answer = http.post("/requests", content=BODY, headers={**HEADERS, "Idempotency-Key": "slow-1"})
    api_id = answer.json()["id"]
    clock.advance(api_store.SETTLE_DEADLINE + timedelta(minutes=1))
    assert http.get(f"/requests/{api_id}", headers=HEADERS).json()["state"] == "lost"

    with database.transaction() as session:  # what ApiJobRunner does when a very slow plan ends
        assert api_store.settle(session, api_id, state="refused", detail="svc is locked by U0REQ.", now=clock())

    settled = http.get(f"/requests/{api_id}", headers=HEADERS).json()
    assert (settled["state"], settled["detail"]) == ("refused", "svc is locked by U0REQ.")
