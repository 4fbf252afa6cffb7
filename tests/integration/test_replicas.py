"""Two ``opsbot serve`` replicas on one PostgreSQL database behave as one bot.

Replica A and replica B are real ``opsbot serve`` processes (two uvicorn workers each, as in
production) on their own ports, sharing one database schema, one fake Slack Web API and one
fake Kubernetes API server. Slack would spread requests over the pods behind its Ingress; the
tests send each signed request to the replica they choose, several at the same moment.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest

from bot.messages import ButtonAction
from bot.store.models import TargetLockRow
from bot.store.states import RequestState
from fakes.kubernetes import FakeKubernetesServer, RecordedRequest
from fakes.slack import FakeSlackApi, Message
from tests.conftest import _postgres_or_fail
from tests.integration.serve_support import (
    CHANNEL,
    DEVELOPER,
    IMAGE,
    ONCALL_ONE,
    ONCALL_TWO,
    DatabaseView,
    OpsbotProcess,
    click_body,
    fake_cluster,
    fake_slack,
    opsbot_serve,
    postgres_schema,
    run_cli,
    serve_environment,
    write_config,
)
from tests.integration.slack_support import SIGNING_SECRET, migrated, signed_headers, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@dataclass
class Replicas:
    a: OpsbotProcess
    b: OpsbotProcess
    slack: FakeSlackApi
    kube: FakeKubernetesServer
    db: DatabaseView
    env: dict[str, str]


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    _postgres_or_fail()
    directory = tmp_path_factory.mktemp("replicas")
    with contextlib.ExitStack() as stack:
        slack = stack.enter_context(fake_slack())
        kube = stack.enter_context(fake_cluster())
        url = migrated(stack.enter_context(postgres_schema()))
        config = write_config(directory, kube)
        env_a, env_b = (
            serve_environment(slack, database_url=url, config_path=config, instance_id=f"replica-{name}", metrics_dir=directory / name)
            for name in ("a", "b")
        )
        a = stack.enter_context(opsbot_serve("a", env_a, directory, workers=2, wait=False))
        b = stack.enter_context(opsbot_serve("b", env_b, directory, workers=2, wait=False))
        a.wait_ready()
        b.wait_ready()
        db = DatabaseView(url)
        stack.callback(db.close)
        yield Replicas(a=a, b=b, slack=slack, kube=kube, db=db, env=env_a)


def test_simultaneous_approvals_through_both_replicas_start_one_rollout(replicas: Replicas) -> None:
    r = replicas
    latest = r.db.latest_request()
    assert r.a.command(r.slack, DEVELOPER, "deploy checkout 1.4.2 to production").status_code == 200
    request = r.db.wait_for_request(after=latest.id if latest else 0)
    assert request.state == RequestState.PENDING_APPROVAL
    message = request_message(r, request.id)
    patches_before = len(production_rollouts(r.kube))

    # Two approvers, each clicking on both replicas, one of them twice on A (a double click).
    clicks = [(r.a, ONCALL_ONE), (r.b, ONCALL_TWO), (r.a, ONCALL_ONE), (r.b, ONCALL_ONE), (r.a, ONCALL_TWO), (r.b, ONCALL_TWO)]
    bodies = [(server, click_body(r.slack, user, message, ButtonAction.APPROVE, click=n)) for n, (server, user) in enumerate(clicks)]
    statuses = press_all_at_once(bodies)

    assert statuses == [200] * len(clicks)
    final = r.db.wait_for_state(request.id, RequestState.SUCCEEDED, RequestState.FAILED, RequestState.ROLLED_BACK, timeout=60)
    assert final.state == RequestState.SUCCEEDED, final.result
    events = [event.event for event in r.db.events(request.id)]
    assert events.count("approval_given") == 1
    assert events.count("approved") == 1
    assert events.count("approval_refused") == len(clicks) - 1, "every other click was refused (and audited), none lost"
    assert events.count("started") == 1
    assert events.count("succeeded") == 1
    assert final.runner_id in ("replica-a", "replica-b")
    assert len(production_rollouts(r.kube)) - patches_before == 1, "exactly one PATCH of the Deployment"
    container = r.kube.deployment("production", "shop", "checkout")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"{IMAGE}:1.4.2"
    r.slack.wait_for(lambda: current(r.slack, message.ts).text.endswith(": succeeded"), timeout=30, what="the message to say succeeded")
    refusals = [e.text for e in r.slack.ephemerals() if f"#{request.id}" in e.text]
    assert len(refusals) == len(clicks) - 1, refusals
    verified = run_cli(r.env, "audit", "verify")
    assert verified.returncode == 0, verified.stderr
    assert "chain intact" in verified.stdout


def test_a_lock_taken_through_one_replica_refuses_a_deploy_through_the_other(replicas: Replicas) -> None:
    r = replicas
    latest = r.db.latest_request()
    assert r.a.command(r.slack, DEVELOPER, 'lock checkout in production --reason "schema migration"').status_code == 200
    try:
        lock = wait_for_lock(r)
        assert lock.holder_id == DEVELOPER

        assert r.b.command(r.slack, ONCALL_ONE, "deploy checkout 1.4.3 to production").status_code == 200

        refusal = r.slack.wait_for(
            lambda: next((e for e in r.slack.ephemerals(user=ONCALL_ONE) if "is locked by" in e.text), None), timeout=30, what="the refusal"
        )
        assert "checkout/production is locked by" in refusal.text
        assert f"<@{DEVELOPER}>" in refusal.text, "the refusal names who holds the lock"
        assert "schema migration" in refusal.text
        newest = r.db.latest_request()
        assert (newest.id if newest else 0) == (latest.id if latest else 0), "no request was created"
    finally:
        r.b.command(r.slack, DEVELOPER, "unlock checkout in production")
    wait_until(lambda: r.db.lock("checkout", "production") is None, timeout=30, what="the unlock through B")


# -- helpers -------------------------------------------------------------------------------------


def press_all_at_once(bodies: list[tuple[OpsbotProcess, bytes]]) -> list[int]:
    """Send every signed click at the same moment, each on its own connection."""
    barrier = threading.Barrier(len(bodies))

    def press(server: OpsbotProcess, body: bytes) -> int:
        headers = signed_headers(SIGNING_SECRET, body)
        with httpx.Client(base_url=str(server.http.base_url), timeout=30) as http:
            barrier.wait(timeout=30)
            return http.post("/slack/events", content=body, headers=headers).status_code

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(lambda item: press(*item), bodies))


def request_message(r: Replicas, request_id: int) -> Message:
    ts = r.db.wait_for_message_ref(request_id)
    return r.slack.wait_for(lambda: current(r.slack, ts), what="the request's message")


def current(slack: FakeSlackApi, ts: str) -> Message:
    for message in slack.messages(CHANNEL):
        if message.ts == ts:
            return message
    raise LookupError(ts)


def production_rollouts(kube: FakeKubernetesServer) -> list[RecordedRequest]:
    """PATCHes that changed the production Deployment (plans are dry runs and do not count)."""
    return [
        request
        for request in kube.requests
        if request.method == "PATCH"
        and request.cluster == "production"
        and request.path.endswith("/deployments/checkout")
        and "dryRun" not in request.query
    ]


def wait_for_lock(r: Replicas) -> TargetLockRow:
    return wait_until(lambda: r.db.lock("checkout", "production"), timeout=30, what="the lock through A")
