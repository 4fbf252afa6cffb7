"""Bad input from Slack's side of the wire, over real signed HTTP against a running opsbot.

Hypothesis drives the ``/ops`` text and the interactivity ``payload=`` of every shape
(not JSON, the wrong JSON type, fields missing or of the wrong type, huge or deeply nested
values, buttons and values opsbot never drew, another workspace). Signatures are forged,
stale, from the future and replayed. Parameters carry SQL metacharacters and Slack
mention/link markup. Whatever arrives, the person gets a clear private answer (or Slack
gets a 4xx), nothing is approved or run that should not be, no traceback reaches a reply
or the server's error log, and the database and its audit chain stay intact.

Every test here is seeded (``derandomize=True``) and bounded by ``max_examples``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import inspect

from bot.audit.events import EventType
from bot.messages import ButtonAction
from bot.store import audit as audit_store
from bot.store import requests as request_store
from bot.store.states import RequestState
from fakes.slack import FakeSlackApi, Message
from tests.doubles import STATE
from tests.integration.slack_support import (
    CHANNEL,
    MESSAGE_METHODS,
    SIGNING_SECRET,
    USERS,
    RunningServer,
    block_actions_payload,
    blocks_of,
    click_payload,
    command_form,
    form_payload,
    posted_request,
    serve_touch_catalog,
    signed_headers,
    slack_signature,
    wait_until,
)
from tests.log_capture import LogRecords, captured_logs

REQUESTER, APPROVER, OUTSIDER = "U0REQ", "U0A00", "U0OUT"
FUZZ = settings(derandomize=True, deadline=None, suppress_health_check=list(HealthCheck), database=None)


def fuzz(examples: int) -> settings:
    """Seeded (derandomized), no deadline (the server is real), ``examples`` inputs."""
    return settings(FUZZ, max_examples=examples)


TRACEBACK = re.compile(r"Traceback \(most recent call last\)|File \"[^\"]+\", line \d+")
INJECTIONS = (
    "'; DROP TABLE requests; --",
    '" OR 1=1 --',
    "<!channel>",
    "<!here>",
    "<@U0ALICE>",
    "<https://evil.example|click>",
    "*bold*",
    "&",
    "&amp;lt;",
)
RAW_MARKUP = ("<!channel>", "<!here>", "<@U0ALICE>", "<https://evil.example")


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def server_log() -> Iterator[LogRecords]:
    with captured_logs() as records:
        yield records


@pytest.fixture
def server(slack: FakeSlackApi, tmp_path: Path, sqlite_url: str, server_log: LogRecords) -> Iterator[RunningServer]:
    with serve_touch_catalog(slack, tmp_path, sqlite_url) as running:
        yield running
        running.wait_idle()


# -- helpers -----------------------------------------------------------------------------------


def assert_still_healthy(server: RunningServer, slack: FakeSlackApi, log: LogRecords) -> None:
    """Liveness and readiness hold, no reply carried a traceback, no error was logged, none escaped."""
    server.wait_idle()
    assert server.http.get("/healthz").status_code == 200
    assert server.http.get("/readyz").status_code == 200
    for call in slack.calls:
        if call.method in MESSAGE_METHODS:
            shown = f"{call.params.get('text', '')} {blocks_of(call) or ''}"
            assert not TRACEBACK.search(shown), f"{call.method} showed a traceback: {shown[:500]}"
    assert log.errors() == []
    assert log.tracebacks() == []


def assert_clear_ack(response: httpx.Response) -> None:
    """A slash command's answer: 200 with a private sentence, or a 4xx (never a 5xx, never a traceback)."""
    assert response.status_code < 500, response.text[:500]
    assert not TRACEBACK.search(response.text)
    if response.status_code == 200:
        answer = response.json()
        assert answer["response_type"] == "ephemeral"
        assert answer["text"].strip()
    else:
        assert 400 <= response.status_code < 500


def audit_events(server: RunningServer) -> list[str]:
    with server.opsbot.database.reading() as session:
        return [row.event for row in audit_store.tail(session, limit=10_000)]


def assert_database_intact(server: RunningServer) -> None:
    database = server.opsbot.database
    tables = set(inspect(database.engine).get_table_names())
    assert {"requests", "audit_events", "approvals", "target_locks", "seen_requests"} <= tables, tables
    assert audit_store.verify(database).broken is None


def pending_request(server: RunningServer, slack: FakeSlackApi) -> Message:
    assert server.slack_user(slack, REQUESTER).command("touch svc v2 in production").status_code == 200
    return posted_request(server.opsbot, slack, "touch svc v2")


def request_state(server: RunningServer, request_id: int = 1) -> str:
    with server.opsbot.database.reading() as session:
        row = request_store.get_request(session, request_id)
    assert row is not None
    return row.state


def post_form(server: RunningServer, form: dict[str, str]) -> httpx.Response:
    return server.post_signed(urlencode(form).encode("utf-8"))


# -- the /ops text ------------------------------------------------------------------------------

WORDS = st.sampled_from(
    ["touch", "report", "lock", "unlock", "help", "history", "approvals", "show", "cancel", "digest", "svc", "production",
     "staging", "in", "to", "for", "--reason", "reason=", "value=", "v2", "1", "5", "-1", "0", "99999999999999999999", "2h",
     '"', "'", "“", "”", "=", "--", "{service}", "[in", "\\", "`", *INJECTIONS]
)  # fmt: skip
COMMAND_TEXT = st.one_of(
    st.text(max_size=120),
    st.lists(WORDS, max_size=10).map(" ".join),
    st.tuples(st.sampled_from(["lock svc --reason", "touch svc", "report svc", "show", "history svc"]), st.lists(WORDS, max_size=6)).map(
        lambda parts: parts[0] + " " + " ".join(parts[1])
    ),
    st.sampled_from(["x" * 2_500, "touch " * 500, "a " * 60, "é" * 4_100]),
)


def test_any_command_text_gets_a_private_answer_never_a_500_or_a_traceback(
    server: RunningServer, slack: FakeSlackApi, server_log: LogRecords
) -> None:
    user = server.slack_user(slack, REQUESTER)
    sent = 0

    @fuzz(250)
    @given(text=COMMAND_TEXT)
    def one_command(text: str) -> None:
        nonlocal sent
        sent += 1
        assert_clear_ack(user.command(text))

    one_command()

    server.wait_idle()
    assert sent >= 200
    for ephemeral in slack.ephemerals():
        assert ephemeral.text.strip() and not TRACEBACK.search(f"{ephemeral.text} {ephemeral.blocks}")
    assert STATE.runs == 0, "nothing the fuzzer typed was approved, so nothing ran"
    assert_still_healthy(server, slack, server_log)
    assert_database_intact(server)


OPS = {"command": "/ops", "user_id": "U0REQ", "channel_id": "C0OPS"}


@pytest.mark.parametrize(
    "form",
    [
        pytest.param({"command": "/ops", "text": "help"}, id="no-user-no-channel"),
        pytest.param(OPS, id="no-text"),
        pytest.param({"command": "/ops", "user_id": "u0req; drop", "channel_id": "C0OPS", "text": "help"}, id="not-a-user-id"),
        pytest.param({**OPS, "text": "help", "response_url": "javascript:x"}, id="bad-url"),
        pytest.param({**OPS, "text": "t" * 4_100}, id="over-4000-chars"),
        pytest.param({**OPS, "command": "/other", "text": "help"}, id="another-command"),
        pytest.param({}, id="empty-form"),
    ],
)  # fmt: skip
def test_an_odd_slash_command_form_is_answered_or_refused_never_crashes(
    server: RunningServer, slack: FakeSlackApi, server_log: LogRecords, form: dict[str, str]
) -> None:
    assert_clear_ack(post_form(server, form))

    assert_still_healthy(server, slack, server_log)


# -- the interactivity payload ----------------------------------------------------------------

JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=3),
    st.sampled_from(["", "T0OTHER", "U0NOBODY", "C0OPS", "__HUGE__", "__DEEP__", "block_actions", "1700000000.000100", "https://"]),
)
ACTION_IDS = st.sampled_from(
    [*(str(action) for action in ButtonAction), "opsbot_approve#2", "opsbot_cancel#17", "someone_elses_button", "", "#", "x" * 300]
)
NOT_OUR_VALUES = st.sampled_from(
    ["12:abc", "-1", "99999999999999999999", "1:0000000000000000:0000000000000000", "1", "", "abc", "T0OTHER:1", "1:<!channel>",
     "9" * 1_999, "1:" + "f" * 2_000]
)  # fmt: skip
FIELD_PATHS: list[tuple[str | int, ...]] = [
    ("type",), ("user",), ("user", "id"), ("user", "team_id"), ("user", "username"), ("team",), ("team", "id"), ("channel",),
    ("channel", "id"), ("container",), ("container", "message_ts"), ("container", "channel_id"), ("container", "is_ephemeral"),
    ("actions",), ("actions", 0), ("actions", 0, "action_id"), ("actions", 0, "value"), ("actions", 0, "type"), ("message",),
    ("message", "ts"), ("response_url",), ("enterprise",), ("is_enterprise_install",), ("api_app_id",), ("authorizations",),
]  # fmt: skip
MUTATION = st.one_of(
    st.tuples(st.just("drop"), st.sampled_from(FIELD_PATHS), st.none()),
    st.tuples(st.just("set"), st.sampled_from(FIELD_PATHS), JUNK),
    st.tuples(st.just("set"), st.just(("actions", 0, "action_id")), ACTION_IDS),
    st.tuples(st.just("set"), st.just(("type",)), st.sampled_from(["view_submission", "shortcut", "message_action", "block_suggestion"])),
    st.tuples(st.just("set"), st.just(("team", "id")), st.just("T0OTHER")),
)
RAW_BODIES = st.one_of(
    st.sampled_from(
        ["", "{", "not json", "[]", "[1, 2]", "42", '"block_actions"', "null", "true", "{}", '{"type": "block_actions"}',
         '{"type": "block_actions", "actions": {}}', '{"type": "block_actions", "actions": [null]}',
         '{"type": "block_actions", "user": "U0A00", "actions": [{"action_id": 1}]}', "[" * 50_000 + "]" * 50_000,
         '{"a": ' * 20_000 + "1" + "}" * 20_000]
    ).map(lambda payload: urlencode({"payload": payload}).encode("utf-8")),
    st.sampled_from([b"payload=%FF%FE%FD", b"payload=", b"payload", b"\xff\xfe", b"payload=%7B%7D&payload=%5B%5D", b"=&=&&"]),
)  # fmt: skip
HUGE_TEXT = "h" * 900_000  # the whole form stays under the server's 1,000,000-byte limit
DEEP_JSON = "[" * 30_000 + "]" * 30_000


@st.composite
def click_shapes(draw: st.DrawFn) -> tuple[str, str, str, list[tuple[str, tuple[str | int, ...], Any]]]:
    """(clicker, action id, value, mutations), never an approver with a value opsbot drew.

    The requester may only press Approve (they could legitimately reject their own request);
    the outsider may press anything; the approver only ever carries a value that is not ours.
    """
    clicker = draw(st.sampled_from([REQUESTER, OUTSIDER, APPROVER]))
    if clicker == REQUESTER:
        action, value = draw(st.sampled_from(["opsbot_approve", "opsbot_approve#1"])), "REAL"
    elif clicker == OUTSIDER:
        action, value = draw(ACTION_IDS), draw(st.one_of(st.just("REAL"), NOT_OUR_VALUES))
    else:
        action, value = draw(ACTION_IDS), draw(NOT_OUR_VALUES)
    mutations = draw(st.lists(MUTATION, max_size=4))
    if clicker == REQUESTER:  # Reject or Cancel from the requester would legitimately withdraw the request
        mutations = [m for m in mutations if m[1] != ("actions", 0, "action_id")]
    return clicker, action, value, mutations


def mutate(payload: dict[str, Any], path: tuple[str | int, ...], value: Any, *, drop: bool) -> None:
    node: Any = payload
    for key in path[:-1]:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return
    with contextlib.suppress(KeyError, IndexError, TypeError):
        if drop:
            del node[path[-1]]
        else:
            node[path[-1]] = value


def payload_text(payload: dict[str, Any]) -> str:
    text = json.dumps(payload)
    return text.replace('"__HUGE__"', json.dumps(HUGE_TEXT), 1).replace('"__DEEP__"', DEEP_JSON, 1)


def identifiable(payload: Any) -> bool:
    """Whether opsbot can tell who clicked and where to answer them privately.

    A payload nested deeper than any JSON decoder will go (``__DEEP__``) tells nobody anything.
    """
    if not isinstance(payload, dict) or payload.get("type") != "block_actions" or "__DEEP__" in json.dumps(payload):
        return False
    user = payload.get("user")
    if not isinstance(user, dict) or not isinstance(user.get("id"), str) or user["id"] not in USERS:
        return False
    channel = payload.get("channel")
    container = payload.get("container")
    channel_id = channel.get("id") if isinstance(channel, dict) else None
    container_channel = container.get("channel_id") if isinstance(container, dict) else None
    url = payload.get("response_url")
    return CHANNEL in (channel_id, container_channel) or (isinstance(url, str) and url.startswith("http://127.0.0.1"))


def test_any_interaction_payload_is_acked_or_refused_and_approves_nothing(
    server: RunningServer, slack: FakeSlackApi, server_log: LogRecords
) -> None:
    message = pending_request(server, slack)
    real_value = click_payload(slack, APPROVER, CHANNEL, message, ButtonAction.APPROVE)["actions"][0]["value"]
    counter = 0
    answered = 0

    @fuzz(300)
    @given(shape=st.one_of(click_shapes(), RAW_BODIES))
    def one_click(shape: tuple[str, str, str, list[tuple[str, tuple[str | int, ...], Any]]] | bytes) -> None:
        nonlocal counter, answered
        counter += 1
        if isinstance(shape, bytes):
            payload: Any = None
            body = shape
        else:
            clicker, action, value, mutations = shape
            url = slack.response_url(CHANNEL, clicker, message_ts=message.ts)
            button = {"type": "button", "action_id": action, "value": real_value if value == "REAL" else value, "block_id": "b"}
            payload = block_actions_payload(clicker, CHANNEL, actions=[button], message={"ts": message.ts}, response_url=url)
            payload["trigger_id"] = f"fuzz.{counter}"  # every body differs, so none is taken for a replay
            for kind, path, junk in mutations:
                mutate(payload, path, copy.deepcopy(junk), drop=kind == "drop")
            body = urlencode({"payload": payload_text(payload)}).encode("utf-8")
        before = len(slack.ephemerals())

        response = server.post_signed(body)

        assert response.status_code == 200 or 400 <= response.status_code < 500, (response.status_code, response.text[:300])
        assert not TRACEBACK.search(response.text)
        server.wait_idle()
        if identifiable(payload):
            answered += 1
            ephemerals = slack.ephemerals()
            assert len(ephemerals) > before, f"the clicker got no answer for {json.dumps(payload)[:600]}"
            assert all(e.text.strip() and not TRACEBACK.search(e.text) for e in ephemerals[before:])

    one_click()

    assert counter >= 250 and answered >= 50
    assert request_state(server) == RequestState.PENDING_APPROVAL
    assert STATE.runs == 0
    events = audit_events(server)
    assert EventType.APPROVAL_GIVEN not in events and EventType.APPROVED not in events and EventType.STARTED not in events
    assert_still_healthy(server, slack, server_log)
    assert_database_intact(server)


def test_a_click_from_another_workspace_approves_nothing_and_is_told_so(
    server: RunningServer, slack: FakeSlackApi, server_log: LogRecords
) -> None:
    message = pending_request(server, slack)
    payload = click_payload(slack, APPROVER, CHANNEL, message, ButtonAction.APPROVE)
    payload["team"] = {"id": "T0OTHER", "domain": "elsewhere"}
    payload["user"]["team_id"] = "T0OTHER"

    response = server.post_signed(form_payload(payload))

    assert response.status_code == 200
    server.wait_idle()
    assert request_state(server) == RequestState.PENDING_APPROVAL
    assert STATE.runs == 0
    answers = [e.text for e in slack.ephemerals(user=APPROVER)]
    assert any("workspace" in text for text in answers), answers
    assert_still_healthy(server, slack, server_log)


def test_a_command_from_another_workspace_does_nothing_and_is_told_so(
    server: RunningServer, slack: FakeSlackApi, server_log: LogRecords
) -> None:
    form = {**command_form(slack, REQUESTER, CHANNEL, "touch svc v2 in production"), "team_id": "T0OTHER"}

    response = post_form(server, form)

    assert_clear_ack(response)
    assert response.status_code == 200 and "another" in response.json()["text"] and "nothing was done" in response.json()["text"]
    server.wait_idle()
    assert audit_events(server) == []
    assert not slack.calls_to("chat.postMessage")
    assert_still_healthy(server, slack, server_log)


# -- signatures --------------------------------------------------------------------------------


FORGERIES = st.one_of(
    st.tuples(st.just("random-signature"), st.text(alphabet="0123456789abcdef", min_size=0, max_size=64)),
    st.tuples(st.just("other-secret"), st.text(min_size=1, max_size=40).filter(lambda s: s != SIGNING_SECRET)),
    st.tuples(st.just("stale"), st.integers(min_value=310, max_value=10**9).map(str)),
    st.tuples(st.just("future"), st.integers(min_value=310, max_value=10**9).map(str)),
    st.tuples(st.just("tampered-body"), st.sampled_from(["touch svc v3 in production", "lock svc", "help"])),
    st.tuples(st.just("bad-timestamp"), st.sampled_from(["", "abc", "1e9", "-1", "0x10", "1.5", "now"])),
    st.tuples(st.just("v1-prefix"), st.just("")),
    st.tuples(st.just("no-headers"), st.just("")),
)


def forged_headers(kind: str, detail: str, body: bytes, original: bytes) -> dict[str, str]:
    now = int(time.time())
    if kind == "random-signature":
        return {**signed_headers(SIGNING_SECRET, body), "X-Slack-Signature": "v0=" + detail}
    if kind == "other-secret":
        return signed_headers(detail, body)
    if kind == "stale":
        return signed_headers(SIGNING_SECRET, body, timestamp=now - int(detail))
    if kind == "future":
        return signed_headers(SIGNING_SECRET, body, timestamp=now + int(detail))
    if kind == "tampered-body":
        return signed_headers(SIGNING_SECRET, original)
    if kind == "bad-timestamp":
        return {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": detail,
            "X-Slack-Signature": slack_signature(SIGNING_SECRET, detail, body),
        }
    if kind == "v1-prefix":
        return {
            **signed_headers(SIGNING_SECRET, body),
            "X-Slack-Signature": signed_headers(SIGNING_SECRET, body)["X-Slack-Signature"].replace("v0=", "v1="),
        }
    return {"Content-Type": "application/x-www-form-urlencoded"}


def test_every_forged_stale_or_future_signature_is_refused_with_401_and_nothing_happens(
    server: RunningServer, slack: FakeSlackApi, server_log: LogRecords
) -> None:
    message = pending_request(server, slack)
    server.wait_idle()
    calls_before = len(slack.calls)
    events_before = audit_events(server)
    approve = server.slack_user(slack, APPROVER).click_body(message, ButtonAction.APPROVE)
    tried = 0

    @fuzz(120)
    @given(forgery=FORGERIES, click=st.booleans())
    def one_forgery(forgery: tuple[str, str], click: bool) -> None:
        nonlocal tried
        tried += 1
        kind, detail = forgery
        body = approve if click else server.slack_user(slack, REQUESTER).command_body(detail if kind == "tampered-body" else "touch svc v3")
        sent = body if kind != "tampered-body" else body + b"&x=1"

        response = server.http.post("/slack/events", content=sent, headers=forged_headers(kind, detail, sent, body))

        assert response.status_code == 401, (kind, detail, response.status_code)

    one_forgery()

    server.wait_idle()
    assert tried >= 100
    assert len(slack.calls) == calls_before, "no forged request reached Slack"
    assert audit_events(server) == events_before, "no forged request was acted on or audited"
    assert request_state(server) == RequestState.PENDING_APPROVAL and STATE.runs == 0
    assert_still_healthy(server, slack, server_log)


def test_a_replayed_approval_click_is_acked_but_counted_once(server: RunningServer, slack: FakeSlackApi, server_log: LogRecords) -> None:
    message = pending_request(server, slack)
    body = server.slack_user(slack, APPROVER).click_body(message, ButtonAction.APPROVE)
    stamp = int(time.time())

    first = server.post_signed(body, timestamp=stamp)
    replays = [server.post_signed(body, timestamp=stamp) for _ in range(3)]

    assert [r.status_code for r in (first, *replays)] == [200, 200, 200, 200]
    wait_until(lambda: request_state(server) == RequestState.SUCCEEDED, what="the approved request to succeed")
    server.wait_idle()
    events = audit_events(server)
    assert STATE.runs == 1
    assert events.count(EventType.APPROVAL_GIVEN) == 1 and events.count(EventType.REPLAY_REJECTED) == 3
    assert not [e for e in slack.ephemerals(user=APPROVER) if "already" in e.text], "a replay is dropped silently, not refused"
    assert_still_healthy(server, slack, server_log)
    assert_database_intact(server)


# -- injection in parameters -------------------------------------------------------------------


def all_text_sent_to_slack(slack: FakeSlackApi) -> list[str]:
    """The ``text`` and the blocks of every message, update, ephemeral and response_url post."""
    return [f"{call.params.get('text', '')}\n{json.dumps(blocks_of(call) or [])}" for call in slack.calls if call.method in MESSAGE_METHODS]


def test_sql_and_mention_injection_in_parameters_is_refused_or_shown_inert_and_the_database_is_intact(
    slack: FakeSlackApi, tmp_path: Path, database_url: str, server_log: LogRecords
) -> None:
    reason = "<!channel> <!here> <@U0ALICE> <https://evil.example|click> *bold* & '; DROP TABLE requests; --"
    with serve_touch_catalog(slack, tmp_path, database_url) as server:
        requester = server.slack_user(slack, REQUESTER)

        refused = requester.command("""touch svc "'; DROP TABLE requests; --" """)
        refused_too = requester.command("""touch svc '" OR 1=1 --'""")
        unclosed = requester.command("touch svc '; DROP TABLE requests; --")
        locked = requester.command(f'lock svc --reason "{reason}"')
        server.wait_idle()
        blocked = requester.command("touch svc v2 in production")
        server.wait_idle()
        requester.command("unlock svc")
        server.wait_idle()

        assert "is not valid" in refused.json()["text"] and "is not valid" in refused_too.json()["text"]
        assert "quote is not closed" in unclosed.json()["text"]
        assert locked.status_code == 200 and blocked.status_code == 200
        assert "is locked by" in " ".join(e.text for e in slack.ephemerals(user=REQUESTER))
        shown = all_text_sent_to_slack(slack) + [r.json()["text"] for r in (refused, refused_too, unclosed, locked)]
        for text in shown:
            for markup in RAW_MARKUP:
                assert markup not in text, f"{markup} reached Slack unescaped: {text[:400]}"
        lock_posts = [text for text in shown if "&lt;!channel&gt;" in text]
        assert lock_posts, "the reason is shown (escaped), not dropped"
        assert any("DROP TABLE requests" in text for text in lock_posts)
        with server.opsbot.database.reading() as session:
            stored = [
                json.loads(row.details).get("reason") for row in audit_store.tail(session, limit=100) if row.event == EventType.LOCKED
            ]
        assert stored == [reason], "the database keeps exactly what was typed"
        assert_database_intact(server)
        assert_still_healthy(server, slack, server_log)
