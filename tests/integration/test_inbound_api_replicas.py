"""Two ``opsbot serve`` replicas on one PostgreSQL database: Alertmanager's copies of one alert open one incident.

An HA Alertmanager pair sends each notification once per instance, and a load balancer spreads
them over the pods; both copies arrive at the same moment at different replicas.
"""

from __future__ import annotations

import contextlib
import functools
import json
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import select

from bot.store.models import IncidentRow, RequestRow
from fakes.slack import FakeSlackApi, Message
from tests.conftest import _postgres_or_fail
from tests.integration.api_support import alert_notification, bearer, deploy, write_api_config
from tests.integration.serve_support import (
    INCIDENT_CHANNEL,
    DatabaseView,
    OpsbotProcess,
    fake_cluster,
    fake_slack,
    opsbot_serve,
    postgres_schema,
    serve_environment,
)
from tests.integration.slack_support import migrated, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@dataclass
class Pair:
    a: OpsbotProcess
    b: OpsbotProcess
    slack: FakeSlackApi
    db: DatabaseView


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    _postgres_or_fail()
    directory = tmp_path_factory.mktemp("api-replicas")
    with contextlib.ExitStack() as stack:
        slack = stack.enter_context(fake_slack())
        kube = stack.enter_context(fake_cluster())
        url = migrated(stack.enter_context(postgres_schema()))
        config = write_api_config(directory, kube)
        envs = [
            serve_environment(slack, database_url=url, config_path=config, instance_id=f"api-{name}", metrics_dir=directory / name)
            for name in ("a", "b")
        ]
        a = stack.enter_context(opsbot_serve("a", envs[0], directory, wait=False))
        b = stack.enter_context(opsbot_serve("b", envs[1], directory, wait=False))
        a.wait_ready()
        b.wait_ready()
        db = DatabaseView(url)
        stack.callback(db.close)
        yield Pair(a=a, b=b, slack=slack, db=db)


def test_the_same_alert_sent_to_both_replicas_at_once_opens_one_incident(pair: Pair) -> None:
    body = alert_notification("firing", fingerprint=uuid.uuid4().hex[:16])
    copies = [pair.a, pair.b, pair.a, pair.b]

    answers = at_once([functools.partial(post, server, "/api/v1/hooks/alertmanager", body, bearer("alerts")) for server in copies])

    assert [answer.status_code for answer in answers] == [200] * len(copies)
    pair.slack.wait_for(lambda: incident_posts(pair.slack), what="the incident message")
    wait_until(lambda: incident_rows(pair) and incident_rows(pair)[0].message_ref, 30, what="the incident's message to be stored")
    assert len(incident_rows(pair)) == 1
    assert len(incident_posts(pair.slack)) == 1


def test_one_idempotency_key_sent_to_both_replicas_at_once_makes_one_request(pair: Pair) -> None:
    key = uuid.uuid4().hex
    body = json.dumps(deploy("1.4.9", env="staging")).encode()
    before = requests(pair)

    answers = at_once([functools.partial(post, server, "/api/v1/requests", body, bearer("ci-release", key)) for server in (pair.a, pair.b)])

    assert [answer.status_code for answer in answers] == [202, 202]
    assert answers[0].json()["id"] == answers[1].json()["id"]
    wait_until(lambda: requests(pair) == before + 1, 30, what="the request to be created")


def post(server: OpsbotProcess, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return server.http.post(path, content=body, headers=headers)


def at_once(calls: list[Callable[[], httpx.Response]]) -> list[httpx.Response]:
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(call) for call in calls]
        return [future.result() for future in futures]


def incident_rows(pair: Pair) -> list[IncidentRow]:
    with pair.db.database.reading() as session:
        return list(session.scalars(select(IncidentRow)))


def incident_posts(slack: FakeSlackApi) -> list[Message]:
    return [message for message in slack.messages(INCIDENT_CHANNEL) if message.thread_ts is None]


def requests(pair: Pair) -> int:
    with pair.db.database.reading() as session:
        return len(list(session.scalars(select(RequestRow))))
