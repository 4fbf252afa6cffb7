"""The inbound API over real HTTP to ``opsbot serve``: CI asks for runbooks, Alertmanager opens incidents.

One ``opsbot serve`` (HTTP workers handing jobs to an executor, as in production) with the fake
Slack Web API and the fake Kubernetes API; the tests call it as CI and Alertmanager would, and
press Slack's buttons as people would.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.messages import ButtonAction
from bot.store.models import AuditEventRow, IncidentRow, RequestRow
from fakes.kubernetes import FakeKubernetesServer
from fakes.slack import FakeSlackApi, Message
from tests.integration.api_support import (
    SIGNING_KEY,
    alert_notification,
    ask,
    bearer,
    deploy,
    incident_click,
    poll,
    signed,
    write_api_config,
)
from tests.integration.serve_support import (
    CHANNEL,
    INCIDENT_CHANNEL,
    ONCALL_ONE,
    DatabaseView,
    OpsbotProcess,
    click_body,
    fake_cluster,
    fake_slack,
    opsbot_serve,
    run_cli,
    serve_environment,
)
from tests.integration.slack_support import migrated, wait_until

pytestmark = [pytest.mark.slow]


@dataclass
class World:
    server: OpsbotProcess
    slack: FakeSlackApi
    kube: FakeKubernetesServer
    db: DatabaseView
    env: dict[str, str]
    directory: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    directory = tmp_path_factory.mktemp("api")
    with contextlib.ExitStack() as stack:
        slack = stack.enter_context(fake_slack())
        kube = stack.enter_context(fake_cluster())
        url = migrated(f"sqlite:///{directory / 'opsbot.db'}")
        config = write_api_config(directory, kube)
        env = serve_environment(slack, database_url=url, config_path=config, instance_id="api", metrics_dir=directory / "metrics")
        (directory / "metrics").mkdir()
        server = stack.enter_context(opsbot_serve("api", env, directory, workers=1))
        db = DatabaseView(url)
        stack.callback(db.close)
        yield World(server=server, slack=slack, kube=kube, db=db, env=env, directory=directory)


# -- who may call ---------------------------------------------------------------------------------


def test_a_call_without_credentials_or_with_a_wrong_token_is_401_with_the_schemes(world: World) -> None:
    http = world.server.http
    body = json.dumps(deploy("1.4.2"))
    missing = http.post("/api/v1/requests", content=body, headers={"Content-Type": "application/json"})
    wrong = http.post("/api/v1/requests", content=body, headers={"Authorization": "Bearer not-a-token", "Idempotency-Key": "k1"})

    for answer in (missing, wrong):
        assert answer.status_code == 401
        assert answer.headers["content-type"] == "application/problem+json"
        assert "Bearer" in answer.headers["www-authenticate"]
        assert answer.json()["status"] == 401
    assert missing.headers["www-authenticate"] == 'Bearer realm="opsbot", OpsbotHMAC realm="opsbot"'
    assert wrong.headers["www-authenticate"] == 'Bearer realm="opsbot", error="invalid_token", OpsbotHMAC realm="opsbot"'
    assert "No credentials" in missing.json()["detail"]
    assert "belongs to no configured client" in wrong.json()["detail"]


def test_a_known_client_calling_an_endpoint_it_was_not_given_is_403(world: World) -> None:
    answer = ask(world.server.http, "alerts", deploy("1.4.2"))

    assert answer.status_code == 403
    assert answer.json()["detail"] == "Client 'alerts' may not call /api/v1/requests (its endpoints: alertmanager)."


def test_a_client_no_policy_rule_names_is_denied_with_the_policys_reason_and_audited(world: World) -> None:
    answer = ask(world.server.http, "ci-other", deploy("1.4.2"))

    assert answer.status_code == 403
    problem = answer.json()
    assert problem["type"] == "urn:opsbot:problem:denied"
    assert problem["detail"] == (
        "Denied: API client `ci-other` may not run `deploy` in production: production does not list it under allow.clients."
    )
    rows = audit_rows(world, actor_id="client:ci-other")
    assert [(row.event, row.outcome) for row in rows][-2:] == [("command_received", "received"), ("denied", "denied")]
    assert rows[-1].actor_name == "ci-other"


# -- a request from CI ------------------------------------------------------------------------------


def test_a_ci_request_that_needs_approval_is_posted_in_slack_and_runs_after_a_click(world: World) -> None:
    http = world.server.http
    answer = ask(http, "ci-release", deploy("1.4.2"))
    assert answer.status_code == 202, answer.text
    api_id = answer.json()["id"]
    assert answer.headers["location"] == f"/api/v1/requests/{api_id}"

    pending = poll(http, "ci-release", api_id, "pending_approval")
    request = pending["request"]
    assert (request["runbook"], request["service"], request["env"], request["approvals"]) == ("deploy", "checkout", "production", [])
    assert request["plan"][0]["after"].endswith(":1.4.2")
    message = world.slack.wait_for(lambda: message_of(world, request["number"]), what="the approval message")
    assert "API client `ci-release`" in json.dumps(message.blocks)

    click = click_body(world.slack, ONCALL_ONE, message, ButtonAction.APPROVE, click=1)
    assert world.server.post_signed(click).status_code == 200
    done = poll(http, "ci-release", api_id, "succeeded", "failed", "not_started")

    assert done["state"] == "succeeded", done
    assert [(vote["user"], vote["decision"]) for vote in done["request"]["approvals"]] == [(ONCALL_ONE, "approve")]
    image = world.kube.deployment("production", "shop", "checkout")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image.endswith(":1.4.2")
    events = world.db.events(request["number"])
    assert {(event.event, event.actor_id) for event in events} >= {
        ("command_received", "client:ci-release"),
        ("approval_given", ONCALL_ONE),
    }


def test_text_goes_through_the_runbooks_grammar_and_a_usage_error_is_422_with_opsbots_message(world: World) -> None:
    answer = ask(world.server.http, "ci-release", {"runbook": "deploy", "text": "checkout to production", "channel": CHANNEL})

    assert answer.status_code == 422
    assert "Usage:" in answer.json()["detail"]
    assert "version" in answer.json()["detail"].lower()


def test_a_client_can_never_approve_even_its_own_request(world: World) -> None:
    """Approvals are clicks by people; a request from a client waits for one, whatever the client sends."""
    http = world.server.http
    api_id = ask(http, "ci-release", deploy("1.4.3")).json()["id"]
    pending = poll(http, "ci-release", api_id, "pending_approval")
    approve = http.post(f"/api/v1/requests/{api_id}/approve", headers=bearer("ci-release", uuid.uuid4().hex))

    assert approve.status_code == 404
    assert approve.headers["content-type"] == "application/problem+json"
    assert world.db.request(pending["request"]["number"]).state == "pending_approval"


# -- replays and limits -------------------------------------------------------------------------------


def test_the_same_idempotency_key_makes_one_request_and_another_body_with_it_is_refused(world: World) -> None:
    http = world.server.http
    key = uuid.uuid4().hex
    before = count(world, RequestRow)
    first = ask(http, "ci-release", deploy("1.4.4", env="staging"), key=key)
    again = ask(http, "ci-release", deploy("1.4.4", env="staging"), key=key)
    other = ask(http, "ci-release", deploy("1.4.5", env="staging"), key=key)
    without = http.post("/api/v1/requests", content=json.dumps(deploy("1.4.4")), headers=bearer("ci-release"))

    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert other.status_code == 422
    assert "already used" in other.json()["detail"]
    assert without.status_code == 400
    assert "Idempotency-Key" in without.json()["detail"]
    poll(http, "ci-release", first.json()["id"], "succeeded", "failed")
    assert count(world, RequestRow) == before + 1


def test_a_signed_call_acts_once_and_a_bad_or_stale_signature_is_401(world: World) -> None:
    http = world.server.http
    body = json.dumps(deploy("1.4.6", env="staging")).encode()
    headers = signed(body)
    first = http.post("/api/v1/requests", content=body, headers=headers)
    replayed = http.post("/api/v1/requests", content=body, headers=headers)
    stale = http.post("/api/v1/requests", content=body, headers=signed(body, timestamp=1_700_000_000))
    forged = http.post("/api/v1/requests", content=body, headers=signed(body, key=SIGNING_KEY[::-1]))

    assert first.status_code == 202, first.text
    assert replayed.status_code == 409
    assert "already received" in replayed.json()["detail"]
    assert (stale.status_code, forged.status_code) == (401, 401)
    assert "from opsbot's clock" in stale.json()["detail"]


def test_an_oversized_body_is_413_before_anything_is_done(world: World) -> None:
    payload = {**deploy("1.4.2"), "text": "x" * 5000}
    payload.pop("args")
    answer = ask(world.server.http, "ci-release", payload)

    assert answer.status_code == 413
    assert answer.headers["content-type"] == "application/problem+json"


def test_a_client_over_its_rate_gets_429_with_retry_after_and_others_are_not_slowed(world: World) -> None:
    http = world.server.http
    answers = [http.get("/api/v1/requests/nothing", headers=bearer("ci-slow")) for _ in range(3)]

    assert [answer.status_code for answer in answers] == [404, 404, 429]
    assert int(answers[2].headers["retry-after"]) >= 1
    assert "ci-slow" in answers[2].json()["detail"]
    assert http.get("/api/v1/requests/nothing", headers=bearer("ci-release")).status_code == 404


# -- Alertmanager -------------------------------------------------------------------------------------


def test_a_firing_alert_opens_one_incident_with_buttons_and_resolved_posts_the_recovery(world: World) -> None:
    http = world.server.http
    fingerprint = uuid.uuid4().hex[:16]
    firing = alert_notification("firing", fingerprint=fingerprint)
    headers = bearer("alerts")
    answers = [http.post("/api/v1/hooks/alertmanager", content=firing, headers=headers) for _ in range(2)]

    assert [answer.status_code for answer in answers] == [200, 200]
    assert answers[0].json() == {"accepted": [fingerprint], "ignored": []}
    message = world.slack.wait_for(lambda: incident_message(world), what="the incident message")
    assert "checkout/production is degraded" in message.text
    actions = {element["action_id"] for block in message.blocks or [] for element in block.get("elements", []) if "action_id" in element}
    assert actions == {str(ButtonAction.INCIDENT_ROLLBACK), str(ButtonAction.INCIDENT_ACK)}
    wait_until(lambda: len(audit_rows(world, event="alert_received")) >= 2, 30, what="both notifications to be handled")
    assert len(incident_messages(world)) == 1, "the repeated notification opened nothing more"

    ack = incident_click(world.slack, ONCALL_ONE, message, str(ButtonAction.INCIDENT_ACK), click=1)
    assert world.server.post_signed(ack).status_code == 200
    world.slack.wait_for(lambda: "Acknowledged by" in json.dumps(current_incident(world).blocks), what="the acknowledgement")

    roll_back = incident_click(world.slack, ONCALL_ONE, current_incident(world), str(ButtonAction.INCIDENT_ROLLBACK), click=2)
    assert world.server.post_signed(roll_back).status_code == 200
    asked = wait_until(lambda: audit_rows(world, actor_id=ONCALL_ONE, event="command_received"), 30, what="the rollback to be asked")
    assert (asked[-1].runbook, asked[-1].service, asked[-1].env) == ("rollback", "checkout", "production"), "the normal rollback path"

    resolved = http.post("/api/v1/hooks/alertmanager", content=alert_notification("resolved", fingerprint=fingerprint), headers=headers)
    assert resolved.status_code == 200
    thread = world.slack.wait_for(lambda: world.slack.thread(INCIDENT_CHANNEL, message.ts)[1:], what="the recovery in the thread")
    assert "has recovered: Alertmanager resolved HighErrorRate" in thread[0].text
    incident = wait_until(lambda: latest_incident(world) if latest_incident(world).state == "resolved" else None, 10, what="resolved")
    assert incident.source == "alertmanager"
    assert {row.actor_id for row in audit_rows(world, event="incident_opened")} == {"client:alerts"}


def test_alerts_that_name_nothing_in_the_catalog_are_listed_as_ignored(world: World) -> None:
    body = alert_notification("firing", fingerprint="ignored-one", env="qa")
    answer = world.server.http.post("/api/v1/hooks/alertmanager", content=body, headers=bearer("alerts"))

    assert answer.status_code == 200
    assert answer.json() == {"accepted": [], "ignored": [{"fingerprint": "ignored-one", "reason": "'checkout' has no environment 'qa'"}]}


def test_a_body_that_is_not_an_alertmanager_notification_is_422(world: World) -> None:
    answer = world.server.http.post("/api/v1/hooks/alertmanager", content=b'{"version": "3"}', headers=bearer("alerts"))

    assert answer.status_code == 422
    assert "version" in answer.json()["detail"]


# -- the description and the audit ---------------------------------------------------------------------


def test_the_openapi_description_is_served_and_generated_from_the_models(world: World) -> None:
    answer = world.server.http.get("/api/v1/openapi.json")

    assert answer.status_code == 200
    document = answer.json()
    assert document["openapi"] == "3.1.0"
    assert set(document["paths"]) == {"/requests", "/requests/{id}", "/hooks/alertmanager"}
    assert "channel" in document["components"]["schemas"]["RunbookRequest"]["required"]


def test_the_audit_chain_stays_intact_after_every_api_call(world: World) -> None:
    verified = run_cli(world.env, "audit", "verify")

    assert verified.returncode == 0, verified.stderr
    assert "chain intact" in verified.stdout


# -- helpers ---------------------------------------------------------------------------------------------


def audit_rows(world: World, *, actor_id: str | None = None, event: str | None = None) -> list[AuditEventRow]:
    query = select(AuditEventRow).order_by(AuditEventRow.seq)
    if actor_id is not None:
        query = query.where(AuditEventRow.actor_id == actor_id)
    if event is not None:
        query = query.where(AuditEventRow.event == event)
    with world.db.database.reading() as session:
        return list(session.scalars(query))


def count(world: World, model: type[RequestRow]) -> int:
    with world.db.database.reading() as session:
        return len(list(session.scalars(select(model))))


def latest_incident(world: World) -> IncidentRow:
    with world.db.database.reading() as session:
        row = session.scalars(select(IncidentRow).order_by(IncidentRow.id.desc())).first()
    assert row is not None
    return row


def message_of(world: World, request_id: int) -> Message | None:
    ts = (world.db.request(request_id).message_ref or {}).get("ts")
    return next((message for message in world.slack.messages(CHANNEL) if message.ts == ts), None)


def incident_messages(world: World) -> list[Message]:
    return [message for message in world.slack.messages(INCIDENT_CHANNEL) if message.thread_ts is None]


def incident_message(world: World) -> Message | None:
    messages = incident_messages(world)
    return messages[-1] if messages else None


def current_incident(world: World) -> Message:
    message = incident_message(world)
    assert message is not None
    return message
