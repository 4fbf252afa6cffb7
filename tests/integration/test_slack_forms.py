"""Forms and shortcuts end to end: signed view_submission, block_suggestion, shortcut and block_actions payloads over HTTP.

A real ``opsbot serve`` app (uvicorn) with the ``touch`` catalog (``svc`` in production, one
approval, runbooks open to ``requesters``), the fake Slack Web API behind it. What a person
sees is read back from the fake: the views opened and updated, the request messages, the
ephemerals; what the core recorded, from the database.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from bot.audit.binding import params_hash
from bot.catalog.catalog import load_catalog
from bot.requests.builtins import BUILTIN_SPECS
from bot.store import requests as request_store
from bot.store.models import RequestRow
from fakes.slack import FakeSlackApi, Message, RecordedCall
from tests.integration.slack_support import (
    CHANNEL,
    TEAM_ID,
    USERS,
    RunningServer,
    catalog_factory,
    form_payload,
    migrated,
    posted_request,
    serve_opsbot,
    serve_touch_catalog,
    slack_settings,
    slack_test_registry,
    wait_until,
    write_touch_catalog,
)

REQUESTER, OUTSIDER = "U0REQ", "U0OUT"


@pytest.fixture
def server(slack: FakeSlackApi, tmp_path: Path, sqlite_url: str) -> Iterator[RunningServer]:
    with serve_touch_catalog(slack, tmp_path, sqlite_url) as running:
        yield running
        running.wait_idle()


# -- what Slack sends ---------------------------------------------------------------------------


def user_of(user_id: str) -> dict[str, str]:
    return {"id": user_id, "username": USERS.get(user_id, user_id), "name": USERS.get(user_id, user_id), "team_id": TEAM_ID}


def touch_view(values: Mapping[str, str], *, channel: str | None = CHANNEL, versions: tuple[str, ...] = ()) -> dict[str, Any]:
    """The ``view`` of a submitted ``touch`` form as Slack sends it back: opsbot's metadata and the person's answers."""
    state: dict[str, Any] = {}
    for name, value in values.items():
        element = {"type": "static_select", "selected_option": {"value": value}} if name in ("service", "env") else {"value": value}
        state[name] = {f"opsbot_form:{name}": {"type": "plain_text_input", **element}}
    if channel is not None:
        state["channel"] = {"opsbot_form:channel": {"type": "conversations_select", "selected_conversation": channel}}
    return {
        "id": "V0FORM",
        "hash": "1700000000.abcdef",
        "type": "modal",
        "callback_id": "opsbot_form",
        "private_metadata": json.dumps({"runbook": "touch", "channel": CHANNEL, "versions": list(versions)}),
        "state": {"values": state},
    }


def submit(server: RunningServer, slack: FakeSlackApi, user_id: str, view: Mapping[str, Any]) -> Any:
    payload = {
        "type": "view_submission",
        "team": {"id": TEAM_ID, "domain": "fake"},
        "user": user_of(user_id),
        "api_app_id": "A0FAKE",
        "trigger_id": "2.3.4",
        "view": dict(view),
        "response_urls": [
            {
                "block_id": "channel",
                "action_id": "opsbot_form:channel",
                "channel_id": CHANNEL,
                "response_url": slack.response_url(CHANNEL, user_id),
            }
        ],
    }
    response = server.post_signed(form_payload(payload))
    assert response.status_code == 200, response.text
    return response.json() if response.content else None


def message_shortcut(server: RunningServer, slack: FakeSlackApi, user_id: str, callback_id: str, message: Message) -> None:
    payload = {
        "type": "message_action",
        "callback_id": callback_id,
        "trigger_id": "3.4.5",
        "team": {"id": TEAM_ID, "domain": "fake"},
        "user": user_of(user_id),
        "channel": {"id": message.channel, "name": "ops"},
        "message_ts": message.ts,
        "message": {"type": "message", "ts": message.ts, "text": message.text, "blocks": message.blocks or []},
        "response_url": slack.response_url(message.channel, user_id),
    }
    response = server.post_signed(form_payload(payload))
    assert response.status_code == 200, response.text


def requests_of(server: RunningServer) -> list[RequestRow]:
    with server.opsbot.database.reading() as session:
        return list(request_store.list_requests(session, limit=50))


def ephemeral_to(slack: FakeSlackApi, user: str, containing: str) -> str:
    """The text and blocks of the newest ephemeral to ``user`` that shows ``containing``."""
    found = slack.wait_for(
        lambda: [f"{e.text}\n{e.blocks}" for e in slack.ephemerals(user=user) if containing in e.text or containing in str(e.blocks)],
        what=f"an ephemeral to {user} with {containing!r}",
    )
    return str(found[-1])


# -- submissions ----------------------------------------------------------------------------------


def test_a_submitted_form_makes_the_same_request_as_the_typed_command(server: RunningServer, slack: FakeSlackApi) -> None:
    answer = submit(server, slack, REQUESTER, touch_view({"service": "svc", "value": "v2", "env": "production"}))
    from_form = posted_request(server.opsbot, slack, "touch svc")
    server.slack_user(slack, REQUESTER).command("touch svc v2 in production")
    wait_until(lambda: len(requests_of(server)) == 2, what="the typed request")
    server.wait_idle()

    assert answer is None, "an empty ack closes the modal"
    typed_row, form_row = requests_of(server)[0], requests_of(server)[1]
    assert typed_row.params == form_row.params == {"service": "svc", "value": "v2", "env": "production"}
    assert form_row.params_hash == typed_row.params_hash == params_hash(dict(typed_row.params))
    assert (form_row.state, form_row.channel, form_row.requester_id) == ("pending_approval", CHANNEL, REQUESTER)
    assert "Approve" in str(from_form.blocks), "the approval message follows in the channel chosen in the form"


def test_invalid_values_come_back_as_field_errors_and_nothing_is_requested(server: RunningServer, slack: FakeSlackApi) -> None:
    answer = submit(server, slack, REQUESTER, touch_view({"service": "svc", "value": "NOT VALID", "env": "moon"}))
    server.wait_idle()

    assert answer == {
        "response_action": "errors",
        "errors": {
            "value": "value 'NOT VALID' is not valid: it must match [a-z0-9.]{1,20}.",
            "env": "Unknown environment 'moon'. svc has environments: production.",
        },
    }
    assert requests_of(server) == []
    assert slack.messages(CHANNEL) == []


def test_a_form_without_a_channel_asks_for_one(server: RunningServer, slack: FakeSlackApi) -> None:
    view = touch_view({"service": "svc", "value": "v2"}, channel=None)
    view["private_metadata"] = json.dumps({"runbook": "touch", "channel": None, "versions": []})  # opened from a global shortcut

    answer = submit(server, slack, REQUESTER, view)

    assert answer == {"response_action": "errors", "errors": {"channel": "Choose the channel to post the request in."}}
    assert requests_of(server) == []


# -- version suggestions ----------------------------------------------------------------------------


def test_the_options_endpoint_answers_with_the_forms_versions_matching_what_was_typed(server: RunningServer, slack: FakeSlackApi) -> None:
    view = touch_view({"service": "svc"}, versions=("1.4.2", "1.4.1", "1.3.0"))
    view["private_metadata"] = json.dumps({"runbook": "deploy", "channel": CHANNEL, "versions": ["1.4.2", "1.4.1", "1.3.0"]})
    payload = {
        "type": "block_suggestion",
        "user": user_of(REQUESTER),
        "team": {"id": TEAM_ID, "domain": "fake"},
        "api_app_id": "A0FAKE",
        "action_id": "opsbot_form:version",
        "block_id": "version~svc",
        "value": "1.4",
        "view": view,
    }

    response = server.post_signed(form_payload(payload))

    assert response.status_code == 200
    assert [option["value"] for option in response.json()["options"]] == ["1.4", "1.4.2", "1.4.1"]


# -- message shortcuts ------------------------------------------------------------------------------


def test_show_audit_trail_answers_privately_with_the_requests_events(server: RunningServer, slack: FakeSlackApi) -> None:
    server.slack_user(slack, REQUESTER).command("touch svc v2 in production")
    message = posted_request(server.opsbot, slack, "touch svc")

    message_shortcut(server, slack, OUTSIDER, "show_audit_trail", message)

    trail = ephemeral_to(slack, OUTSIDER, "Audit:")
    assert "@requester asked for it" in trail
    assert "approval requested" in trail
    assert not [m for m in slack.messages(CHANNEL) if "Audit:" in str(m.blocks)], "only the person who asked sees it"


def test_a_message_shortcut_on_another_message_is_refused_clearly(server: RunningServer, slack: FakeSlackApi) -> None:
    other = Message(channel=CHANNEL, ts="1700000001.000200", text="lunch at noon?")

    message_shortcut(server, slack, REQUESTER, "show_audit_trail", other)

    assert "works on opsbot's request messages" in ephemeral_to(slack, REQUESTER, "request messages")
    assert not slack.calls_to("views.open")


# -- opening and redrawing forms (views.open / views.update on the fake Slack) ----------------------

FORMS_CONFIG = """\
users: {U0REQ: requester, U0A00: approver0, U0A01: approver1, U0OUT: outsider, U0GRP: grouped}
groups:
  approvers: [U0A00, U0A01]
  requesters: [U0REQ, U0A00, U0A01]
channels: {incident: C0INCIDENT}
services:
  svc:
    default_env: production
    environments:
      production: {kubernetes: {context: none, namespace: ns, deployment: svc}}
      staging: {kubernetes: {context: none, namespace: ns, deployment: svc-staging}}
  other:
    environments:
      production: {kubernetes: {context: none, namespace: ns, deployment: other}}
policy:
  rules:
    - runbooks: [touch, rollback]
      services: [svc]
      envs: [production, staging]
      allow: {groups: [requesters]}
      approvals: {count: 1, approvers: [approvers], expires_in: 10m}
    - runbooks: [report]
      envs: [production]
      allow: {users: ["*"]}
"""

ROLLBACK_RUNBOOK = """\
name: rollback
description: Put the previous value back.
usage: rollback {service} [in {env}] [to {revision}]
parameters:
  service: {type: service}
  env: {type: env}
  revision: {type: int, min: 1, help: the revision to return to}
steps:
  - name: Touch
    action: test.touch
    args: {value: "v1"}
timeout: 2m
"""


@pytest.fixture
def forms_server(slack: FakeSlackApi, tmp_path: Path, sqlite_url: str) -> Iterator[RunningServer]:
    """Two services (``svc`` open to requesters, ``other`` to nobody but for ``report``) and a ``rollback`` runbook."""
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "rollback.yaml").write_text(ROLLBACK_RUNBOOK)
    write_touch_catalog(tmp_path, FORMS_CONFIG)
    catalog = load_catalog(tmp_path / "opsbot.yaml", tmp_path / "runbooks", builtins=BUILTIN_SPECS, registry=slack_test_registry())
    settings = slack_settings(
        slack, database_url=migrated(sqlite_url), config_path=tmp_path / "opsbot.yaml", runbooks_dir=tmp_path / "runbooks"
    )
    with serve_opsbot(settings, core_factory=catalog_factory(catalog)) as running:
        yield running
        running.wait_idle()


def view_of(call: RecordedCall) -> dict[str, Any]:
    raw = call.params.get("view")
    view = json.loads(raw) if isinstance(raw, str) else raw
    assert isinstance(view, dict), call.params
    return view


def opened_view(slack: FakeSlackApi, number: int = 1) -> dict[str, Any]:
    calls = slack.wait_for(lambda: slack.calls_to("views.open")[number - 1 :] or None, what=f"views.open #{number}")
    return view_of(calls[0])


def select_values(view: Mapping[str, Any], block_id: str) -> list[str]:
    block = next(block for block in view["blocks"] if block.get("block_id") == block_id)
    element = block.get("element") or block.get("accessory")
    return [option["value"] for option in element["options"]]


def global_shortcut(server: RunningServer, user_id: str) -> None:
    payload = {
        "type": "shortcut", "callback_id": "run_runbook", "trigger_id": "4.5.6", "team": {"id": TEAM_ID, "domain": "fake"},
        "user": user_of(user_id), "api_app_id": "A0FAKE",
    }  # fmt: skip
    assert server.post_signed(form_payload(payload)).status_code == 200


def test_ops_alone_opens_a_picker_of_the_runbooks_the_policy_lets_you_run(forms_server: RunningServer, slack: FakeSlackApi) -> None:
    ack = forms_server.slack_user(slack, REQUESTER).command("")
    requester_picker = opened_view(slack)
    forms_server.slack_user(slack, OUTSIDER).command("")
    outsider_picker = opened_view(slack, 2)

    assert ack.json()["text"] == "Opening the runbook picker…"
    assert requester_picker["callback_id"] == "opsbot_form_picker"
    assert select_values(requester_picker, "runbook") == ["report", "rollback", "touch"]
    assert select_values(outsider_picker, "runbook") == ["report"], "the policy lets an outsider run report only"


def test_the_run_runbook_shortcut_opens_the_same_picker(forms_server: RunningServer, slack: FakeSlackApi) -> None:
    global_shortcut(forms_server, REQUESTER)

    picker = opened_view(slack)

    assert select_values(picker, "runbook") == ["report", "rollback", "touch"]
    assert slack.calls_to("views.open")[0].params.get("trigger_id") == "4.5.6"


def test_a_command_missing_values_opens_its_form_with_what_was_typed(forms_server: RunningServer, slack: FakeSlackApi) -> None:
    ack = forms_server.slack_user(slack, REQUESTER).command("touch svc")

    form = opened_view(slack)

    assert ack.json()["text"] == "Opening the `touch` form for the values left out…"
    assert form["callback_id"] == "opsbot_form"
    assert select_values(form, "service") == ["svc"], "only the services the person may act on"
    service = next(block for block in form["blocks"] if block.get("block_id") == "service")
    assert service["element"]["initial_option"]["value"] == "svc"
    assert select_values(form, "env~svc") == ["production", "staging"]
    assert requests_of(forms_server) == [], "nothing is requested before the form is submitted"


def test_choosing_a_runbook_in_the_picker_redraws_the_modal_as_its_form(forms_server: RunningServer, slack: FakeSlackApi) -> None:
    forms_server.slack_user(slack, REQUESTER).command("")
    picker = opened_view(slack)
    shown = slack.calls_to("views.open")[0].response or {}
    view_id = (shown.get("view") or {}).get("id", "V0PICKER")
    payload = {
        "type": "block_actions",
        "team": {"id": TEAM_ID, "domain": "fake"},
        "user": user_of(REQUESTER),
        "api_app_id": "A0FAKE",
        "trigger_id": "5.6.7",
        "container": {"type": "view", "view_id": view_id},
        "view": {**picker, "id": view_id, "hash": (shown.get("view") or {}).get("hash", "1.a"), "state": {"values": {}}},
        "actions": [
            {
                "type": "static_select", "action_id": "opsbot_form_pick", "block_id": "runbook",
                "selected_option": {"text": {"type": "plain_text", "text": "touch"}, "value": "touch"}, "action_ts": "1700000000.1",
            }
        ],
    }  # fmt: skip

    assert forms_server.post_signed(form_payload(payload)).status_code == 200

    update = slack.wait_for(lambda: slack.calls_to("views.update") or None, what="views.update")[0]
    assert update.params.get("view_id") == view_id
    form = view_of(update)
    assert form["callback_id"] == "opsbot_form" and form["title"]["text"] == "Run touch"


def test_roll_back_this_deploy_opens_the_rollback_form_for_the_requests_target(forms_server: RunningServer, slack: FakeSlackApi) -> None:
    forms_server.slack_user(slack, REQUESTER).command("touch svc v2 in staging")
    message = posted_request(forms_server.opsbot, slack, "touch svc")

    message_shortcut(forms_server, slack, REQUESTER, "rollback_this_deploy", message)

    form = opened_view(slack)
    assert form["title"]["text"] == "Run rollback"
    service = next(block for block in form["blocks"] if block.get("block_id") == "service")
    env = next(block for block in form["blocks"] if block.get("block_id") == "env~svc")
    assert (service["element"]["initial_option"]["value"], env["element"]["initial_option"]["value"]) == ("svc", "staging")
