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
from bot.store import requests as request_store
from bot.store.models import RequestRow
from fakes.slack import FakeSlackApi, Message
from tests.integration.slack_support import (
    CHANNEL,
    TEAM_ID,
    USERS,
    RunningServer,
    form_payload,
    posted_request,
    serve_touch_catalog,
    wait_until,
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
