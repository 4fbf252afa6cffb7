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
from urllib.parse import urlencode

import pytest

from bot.audit.binding import params_hash
from bot.catalog.catalog import load_catalog
from bot.requests.builtins import BUILTIN_SPECS
from bot.store import requests as request_store
from bot.store.models import RequestRow
from fakes.slack import FakeSlackApi, Message
from fakes.slack.views import View
from tests.integration.slack_support import (
    CHANNEL,
    TEAM_ID,
    USERS,
    RunningServer,
    catalog_factory,
    command_form,
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
        "trigger_id": slack.trigger_id(user_id),
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


def command(server: RunningServer, slack: FakeSlackApi, user_id: str, text: str) -> Any:
    """``/ops <text>`` with a trigger_id the fake Slack issued (one use, 3 seconds), as Slack sends it."""
    fields = {**command_form(slack, user_id, CHANNEL, text), "trigger_id": slack.trigger_id(user_id)}
    response = server.post_signed(urlencode(fields).encode())
    assert response.status_code == 200, response.text
    return response.json()


def shown_modal(slack: FakeSlackApi, user_id: str, callback_id: str) -> View:
    """The top modal open for ``user_id`` once it has ``callback_id`` (the fake refused it if over Slack's limits)."""

    def shown() -> View | None:
        stack = slack.open_modals(user_id)
        return stack[-1] if stack and stack[-1].callback_id == callback_id else None

    return slack.wait_for(shown, what=f"a {callback_id} modal for {user_id}")


def select_values(view: View, block_id: str) -> list[str]:
    block = next(block for block in view.blocks if block.get("block_id") == block_id)
    element = block.get("element") or block.get("accessory") or {}
    return [option["value"] for option in element["options"]]


def initial_value(view: View, block_id: str) -> str | None:
    block = next(block for block in view.blocks if block.get("block_id") == block_id)
    option = block["element"].get("initial_option")
    return option["value"] if option else None


def in_view_action(slack: FakeSlackApi, view: View, user_id: str, action: Mapping[str, Any], values: Mapping[str, object]) -> bytes:
    """A ``block_actions`` payload from inside a modal: the view as Slack holds it, with what was entered so far."""
    body = slack.submission(view.id, user_id, values)
    return form_payload(
        {
            "type": "block_actions", "team": body["team"], "user": body["user"], "api_app_id": "A0FAKEAPP",
            "trigger_id": slack.trigger_id(user_id), "container": {"type": "view", "view_id": view.id},
            "view": body["view"], "actions": [{**action, "action_ts": "1700000000.100000"}],
        }
    )  # fmt: skip


def test_ops_alone_opens_a_picker_of_the_runbooks_the_policy_lets_you_run(forms_server: RunningServer, slack: FakeSlackApi) -> None:
    ack = command(forms_server, slack, REQUESTER, "")
    command(forms_server, slack, OUTSIDER, "")

    assert ack["text"] == "Opening the runbook picker…"
    assert select_values(shown_modal(slack, REQUESTER, "opsbot_form_picker"), "runbook") == ["report", "rollback", "touch"]
    assert select_values(shown_modal(slack, OUTSIDER, "opsbot_form_picker"), "runbook") == ["report"], (
        "the policy lets outsiders run report"
    )


def test_the_run_runbook_shortcut_opens_the_same_picker(forms_server: RunningServer, slack: FakeSlackApi) -> None:
    payload = {
        "type": "shortcut", "callback_id": "run_runbook", "trigger_id": slack.trigger_id(REQUESTER),
        "team": {"id": TEAM_ID, "domain": "fake"}, "user": user_of(REQUESTER), "api_app_id": "A0FAKE",
    }  # fmt: skip
    assert forms_server.post_signed(form_payload(payload)).status_code == 200

    assert select_values(shown_modal(slack, REQUESTER, "opsbot_form_picker"), "runbook") == ["report", "rollback", "touch"]


def test_a_command_missing_values_opens_its_form_with_what_was_typed(forms_server: RunningServer, slack: FakeSlackApi) -> None:
    ack = command(forms_server, slack, REQUESTER, "touch svc")

    form = shown_modal(slack, REQUESTER, "opsbot_form")

    assert ack["text"] == "Opening the `touch` form for the values left out…"
    assert select_values(form, "service") == ["svc"], "only the services the person may act on (not `other`)"
    assert initial_value(form, "service") == "svc"
    assert select_values(form, "env~svc") == ["production", "staging"]
    assert initial_value(form, "env~svc") == "production", "the service's default env"
    assert requests_of(forms_server) == [], "nothing is requested before the form is submitted"


def test_the_form_opened_and_submitted_makes_the_same_request_as_typed(forms_server: RunningServer, slack: FakeSlackApi) -> None:
    command(forms_server, slack, REQUESTER, "touch svc")
    form = shown_modal(slack, REQUESTER, "opsbot_form")
    submission = slack.submission(form.id, REQUESTER, {"opsbot_form:value": "v2", "opsbot_form:channel": CHANNEL})

    answer = forms_server.post_signed(form_payload(submission))
    posted_request(forms_server.opsbot, slack, "touch svc v2")
    command(forms_server, slack, REQUESTER, "touch svc v2 in production")
    wait_until(lambda: len(requests_of(forms_server)) == 2, what="the typed request")

    assert answer.status_code == 200 and not answer.content
    typed, from_form = requests_of(forms_server)
    assert from_form.params == typed.params == {"service": "svc", "value": "v2", "env": "production"}
    assert from_form.params_hash == typed.params_hash


def test_a_wrong_value_in_the_opened_form_comes_back_beside_its_field(forms_server: RunningServer, slack: FakeSlackApi) -> None:
    command(forms_server, slack, REQUESTER, "touch svc")
    form = shown_modal(slack, REQUESTER, "opsbot_form")
    submission = slack.submission(form.id, REQUESTER, {"opsbot_form:value": "No Capitals", "opsbot_form:channel": CHANNEL})

    answer = forms_server.post_signed(form_payload(submission)).json()

    assert answer == {"response_action": "errors", "errors": {"value": "value 'No Capitals' is not valid: it must match [a-z0-9.]{1,20}."}}
    assert requests_of(forms_server) == []


def test_changing_the_env_redraws_the_form_in_place(forms_server: RunningServer, slack: FakeSlackApi) -> None:
    command(forms_server, slack, REQUESTER, "touch svc")
    form = shown_modal(slack, REQUESTER, "opsbot_form")
    changed = {"type": "static_select", "action_id": "opsbot_form:env", "block_id": "env~svc", "selected_option": {"value": "staging"}}

    response = forms_server.post_signed(in_view_action(slack, form, REQUESTER, changed, {"opsbot_form:env": "staging"}))

    assert response.status_code == 200
    update = slack.wait_for(lambda: [c for c in slack.calls_to("views.update") if c.ok] or None, what="a views.update")[0]
    assert update.params.get("view_id") == form.id and update.params.get("hash") == form.hash, "guarded by the hash Slack sent"
    assert initial_value(slack.view(form.id), "env~svc") == "staging"


def test_choosing_a_runbook_in_the_picker_redraws_the_modal_as_its_form(forms_server: RunningServer, slack: FakeSlackApi) -> None:
    command(forms_server, slack, REQUESTER, "")
    picker = shown_modal(slack, REQUESTER, "opsbot_form_picker")
    chosen = {"type": "static_select", "action_id": "opsbot_form_pick", "block_id": "runbook", "selected_option": {"value": "touch"}}

    response = forms_server.post_signed(in_view_action(slack, picker, REQUESTER, chosen, {}))

    assert response.status_code == 200
    form = shown_modal(slack, REQUESTER, "opsbot_form")
    assert form.id == picker.id, "the same modal, redrawn"
    assert form.payload["title"]["text"] == "Run touch"


def test_roll_back_this_deploy_opens_the_rollback_form_for_the_requests_target(forms_server: RunningServer, slack: FakeSlackApi) -> None:
    command(forms_server, slack, REQUESTER, "touch svc v2 in staging")
    message = posted_request(forms_server.opsbot, slack, "touch svc")

    message_shortcut(forms_server, slack, REQUESTER, "rollback_this_deploy", message)

    form = shown_modal(slack, REQUESTER, "opsbot_form")
    assert form.payload["title"]["text"] == "Run rollback"
    assert (initial_value(form, "service"), initial_value(form, "env~svc")) == ("svc", "staging")


def test_a_mistyped_service_is_still_a_usage_error_not_a_form(forms_server: RunningServer, slack: FakeSlackApi) -> None:
    ack = command(forms_server, slack, REQUESTER, "touch sv")

    assert ack["text"] == "Missing value.\nUsage: `/ops touch {service} {value} [in {env}]`", "no service sv: not a form to finish"
    assert not slack.calls_to("views.open")


def test_a_form_submitted_by_a_person_of_another_organisation_is_refused_in_the_form(server: RunningServer, slack: FakeSlackApi) -> None:
    view = touch_view({"service": "svc", "value": "v2", "env": "production"})
    payload = {
        "type": "view_submission", "team": {"id": TEAM_ID}, "user": {**user_of(REQUESTER), "team_id": "T0OTHERORG"},
        "api_app_id": "A0FAKE", "trigger_id": "2.3.4", "view": view,
    }  # fmt: skip

    answer = server.post_signed(form_payload(payload)).json()
    server.wait_idle()

    assert answer["response_action"] == "errors"
    assert "your account belongs to another organisation's workspace (T0OTHERORG)" in answer["errors"]["channel"]
    assert requests_of(server) == []
