"""The fake Slack Web API, driven by the real slack_sdk clients over HTTP.

These tests pin down the Slack behaviours opsbot depends on, so a test that
passes against the fake means the same client code would get the same
answers from Slack: error codes with HTTP 200, 429 with Retry-After, Block
Kit limits, the files_upload_v2 flow and response_url's five-use limit.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.webhook import WebhookClient

from fakes.slack import FakeSlackApi

TOKEN = "xoxb-test"
USERS = {"U0ALICE": "alice", "U0BOB": "bob"}
CHANNELS = {"C0OPS": "ops", "C0DEPLOY": "deploys"}
GROUPS = {"S0ONCALL": ("platform-oncall", ["U0ALICE", "U0BOB"])}


class FakeClock:
    """A clock the test moves by hand, for expiry and refill without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def slack() -> Iterator[FakeSlackApi]:
    with FakeSlackApi(token=TOKEN, users=USERS, channels=CHANNELS, usergroups=GROUPS) as fake:
        yield fake


@pytest.fixture
def client(slack: FakeSlackApi) -> WebClient:
    """A client without retry handlers, so every Slack answer reaches the test."""
    return WebClient(token=TOKEN, base_url=slack.api_url, retry_handlers=[])


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def button(action_id: str, *, text: str = "Approve", value: str = "v") -> dict[str, Any]:
    return {"type": "button", "action_id": action_id, "text": {"type": "plain_text", "text": text}, "value": value}


def slack_error(call: Any) -> SlackApiError:
    with pytest.raises(SlackApiError) as caught:
        call()
    return caught.value


# -- messages --------------------------------------------------------------------------


def test_post_reply_and_update_leave_the_channel_in_slacks_state(slack: FakeSlackApi, client: WebClient) -> None:
    parent = client.chat_postMessage(channel="C0OPS", text="deploying api", blocks=[section("deploying *api*")])
    reply = client.chat_postMessage(channel="C0OPS", text="step 1 done", thread_ts=parent["ts"])
    client.chat_update(channel="C0OPS", ts=parent["ts"], text="deployed api")

    assert parent["channel"] == "C0OPS"
    assert parent["message"]["text"] == "deploying api"
    assert float(reply["ts"]) > float(parent["ts"])
    first, second = slack.messages("C0OPS")
    assert (first.ts, first.text, first.edited_count) == (parent["ts"], "deployed api", 1)
    assert first.blocks == [section("deploying *api*")], "chat.update without blocks keeps them"
    assert (second.text, second.thread_ts) == ("step 1 done", parent["ts"])
    assert [m.ts for m in slack.thread("C0OPS", parent["ts"])] == [parent["ts"], reply["ts"]]
    assert slack.messages("C0DEPLOY") == []


def test_calls_are_recorded_in_order_with_blocks_decoded(slack: FakeSlackApi, client: WebClient) -> None:
    client.chat_postMessage(channel="C0OPS", text="json body", blocks=[section("a")])
    client.api_call("chat.postMessage", data={"channel": "C0OPS", "text": "form body", "blocks": '[{"type": "divider"}]'})

    json_call, form_call = slack.calls_to("chat.postMessage")
    assert json_call.params["blocks"] == [section("a")]
    assert form_call.params["blocks"] == [{"type": "divider"}]
    assert form_call.headers["authorization"] == f"Bearer {TOKEN}"
    assert json_call.at <= form_call.at and form_call.status == 200 and form_call.ok
    assert slack.messages("C0OPS")[1].blocks == [{"type": "divider"}]


def test_reply_to_a_reply_lands_in_the_parents_thread(slack: FakeSlackApi, client: WebClient) -> None:
    parent = client.chat_postMessage(channel="C0OPS", text="parent")
    reply = client.chat_postMessage(channel="C0OPS", text="reply", thread_ts=parent["ts"])
    nested = client.chat_postMessage(channel="C0OPS", text="nested", thread_ts=reply["ts"])

    assert nested["message"]["thread_ts"] == parent["ts"]
    assert len(slack.thread("C0OPS", parent["ts"])) == 3


def test_channel_names_and_user_ids_resolve_like_slack(slack: FakeSlackApi, client: WebClient) -> None:
    by_name = client.chat_postMessage(channel="#deploys", text="by name")
    dm = client.chat_postMessage(channel="U0ALICE", text="psst")
    opened = client.conversations_open(users="U0ALICE")

    assert by_name["channel"] == "C0DEPLOY"
    assert dm["channel"].startswith("D") and opened["channel"]["id"] == dm["channel"]
    assert [m.text for m in slack.messages(dm["channel"])] == ["psst"]


def test_ephemerals_are_kept_apart_from_channel_messages(slack: FakeSlackApi, client: WebClient) -> None:
    answer = client.chat_postEphemeral(channel="C0OPS", user="U0ALICE", text="only you")
    refused = slack_error(lambda: client.chat_postEphemeral(channel="C0OPS", user="U0NOBODY", text="x"))

    assert answer["message_ts"]
    assert [e.text for e in slack.ephemerals(channel="C0OPS", user="U0ALICE")] == ["only you"]
    assert slack.messages("C0OPS") == []
    assert refused.response["error"] == "user_not_in_channel"


def test_update_of_a_missing_message_and_empty_post_fail(client: WebClient) -> None:
    missing = slack_error(lambda: client.chat_update(channel="C0OPS", ts="1.000000", text="x"))
    empty = slack_error(lambda: client.api_call("chat.postMessage", json={"channel": "C0OPS"}))

    assert missing.response["error"] == "message_not_found"
    assert empty.response["error"] == "no_text"


# -- auth and errors -------------------------------------------------------------------


def test_wrong_or_missing_token_is_refused(slack: FakeSlackApi) -> None:
    wrong = slack_error(lambda: WebClient(token="xoxb-wrong", base_url=slack.api_url).auth_test())
    missing = slack_error(lambda: WebClient(base_url=slack.api_url).chat_postMessage(channel="C0OPS", text="x"))

    assert (wrong.response.status_code, wrong.response["error"]) == (200, "invalid_auth")
    assert missing.response["error"] == "not_authed"
    assert slack.messages("C0OPS") == []


def test_auth_test_identifies_the_bot(client: WebClient) -> None:
    answer = client.auth_test()

    assert answer["user_id"] == "U0BOT" and answer["bot_id"] == "B0BOT" and answer["team_id"] == "T0FAKE"
    assert "chat:write" in answer.headers["x-oauth-scopes"]


def test_unknown_channel_and_unknown_method(client: WebClient) -> None:
    no_channel = slack_error(lambda: client.chat_postMessage(channel="C0NOPE", text="x"))
    no_method = slack_error(lambda: client.api_call("chat.postMesage"))

    assert no_channel.response["error"] == "channel_not_found"
    assert no_method.response["error"] == "unknown_method"


def test_fail_next_answers_ok_false_with_http_200_then_recovers(slack: FakeSlackApi, client: WebClient) -> None:
    slack.fail_next("chat.postMessage", error="is_archived")

    failed = slack_error(lambda: client.chat_postMessage(channel="C0OPS", text="first"))
    client.chat_postMessage(channel="C0OPS", text="second")

    assert (failed.response.status_code, failed.response["error"]) == (200, "is_archived")
    assert [m.text for m in slack.messages("C0OPS")] == ["second"]


# -- Block Kit limits ------------------------------------------------------------------


def test_section_text_over_3000_chars_is_invalid_blocks(slack: FakeSlackApi, client: WebClient) -> None:
    client.chat_postMessage(channel="C0OPS", text="at the limit", blocks=[section("x" * 3000)])
    refused = slack_error(lambda: client.chat_postMessage(channel="C0OPS", text="over", blocks=[section("x" * 3001)]))

    assert refused.response["error"] == "invalid_blocks"
    assert refused.response["response_metadata"]["messages"] == [
        "[ERROR] must be less than 3001 characters [json-pointer:/blocks/0/text/text]"
    ]
    assert [m.text for m in slack.messages("C0OPS")] == ["at the limit"]


@pytest.mark.parametrize(
    ("blocks", "pointer"),
    [
        pytest.param([{"text": {"type": "mrkdwn", "text": "x"}}], "/blocks/0", id="missing-type"),
        pytest.param([{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}], "/blocks/0/text/text", id="header-151"),
        pytest.param([{"type": "header", "text": {"type": "mrkdwn", "text": "h"}}], "/blocks/0/text/type", id="header-mrkdwn"),
        pytest.param([{"type": "divider"}] * 51, "/blocks", id="51-blocks"),
        pytest.param([{"type": "actions", "elements": [button(f"a{i}") for i in range(26)]}], "/blocks/0/elements", id="26-elements"),
        pytest.param([{"type": "actions", "elements": [button("a", value="v" * 2001)]}], "/blocks/0/elements/0/value", id="value-2001"),
        pytest.param([{"type": "actions", "elements": [button("a", text="t" * 76)]}], "/blocks/0/elements/0/text/text", id="text-76"),
        pytest.param([{"type": "actions", "elements": [button("a"), button("a")]}], "/blocks/0/elements/1/action_id", id="dup-action"),
        pytest.param([{"type": "divider", "block_id": "b"}, {"type": "divider", "block_id": "b"}], "/blocks/1/block_id", id="dup-block"),
        pytest.param([{"type": "sectoin", "text": {"type": "mrkdwn", "text": "x"}}], "/blocks/0/type", id="unknown-type"),
    ],
)
def test_block_kit_limits_are_enforced(client: WebClient, blocks: list[dict[str, Any]], pointer: str) -> None:
    refused = slack_error(lambda: client.chat_postMessage(channel="C0OPS", text="fallback", blocks=blocks))

    assert refused.response["error"] == "invalid_blocks"
    assert any(f"[json-pointer:{pointer}]" in line for line in refused.response["response_metadata"]["messages"])


def test_limits_at_their_boundaries_are_accepted(slack: FakeSlackApi, client: WebClient) -> None:
    actions: dict[str, Any] = {"type": "actions", "elements": [button(f"a{i}", text="t" * 75, value="v" * 2000) for i in range(25)]}
    same_action_other_block: dict[str, Any] = {"type": "actions", "elements": [button("a0")]}
    header: dict[str, Any] = {"type": "header", "text": {"type": "plain_text", "text": "h" * 150}}
    blocks: list[dict[str, Any]] = [header, actions, same_action_other_block] + [{"type": "divider"}] * 47

    client.chat_postMessage(channel="C0OPS", text="x" * 40_000, blocks=blocks)

    assert len(slack.messages("C0OPS")[0].blocks or []) == 50


def test_text_over_40000_chars_and_malformed_blocks(client: WebClient) -> None:
    too_long = slack_error(lambda: client.chat_postMessage(channel="C0OPS", text="x" * 40_001))
    form = {"channel": "C0OPS", "text": "t"}
    not_a_list = slack_error(lambda: client.api_call("chat.postMessage", data={**form, "blocks": '{"type": "divider"}'}))
    not_json = slack_error(lambda: client.api_call("chat.postMessage", data={**form, "blocks": "[{"}))

    assert too_long.response["error"] == "msg_too_long"
    assert not_a_list.response["error"] == "invalid_blocks_format"
    assert not_json.response["error"] == "invalid_blocks_format"


# -- rate limits -----------------------------------------------------------------------


def test_429_is_retried_after_retry_after_by_the_sdk_handler(slack: FakeSlackApi) -> None:
    slack.rate_limit("chat.postMessage", times=1, retry_after=1)
    retrying = WebClient(token=TOKEN, base_url=slack.api_url, retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)])

    answer = retrying.chat_postMessage(channel="C0OPS", text="eventually")

    limited, retried = slack.calls_to("chat.postMessage")
    assert answer["ok"]
    assert (limited.status, limited.error) == (429, "ratelimited")
    assert retried.status == 200
    assert retried.at - limited.at >= 1.0, "the retry must wait for Retry-After"
    assert [m.text for m in slack.messages("C0OPS")] == ["eventually"]


def test_429_without_a_retry_handler_reaches_the_caller(slack: FakeSlackApi, client: WebClient) -> None:
    slack.rate_limit("users.info", times=1, retry_after=7)

    refused = slack_error(lambda: client.users_info(user="U0ALICE"))

    assert refused.response.status_code == 429
    assert refused.response.headers["Retry-After"] == "7"
    assert refused.response["error"] == "ratelimited"
    assert client.users_info(user="U0ALICE")["user"]["name"] == "alice"


def test_realistic_mode_limits_posts_per_channel_with_a_burst() -> None:
    clock = FakeClock()
    with FakeSlackApi(token=TOKEN, channels=CHANNELS, clock=clock) as slack:
        slack.enable_realistic_rate_limits(per_second=1.0, burst=2)
        client = WebClient(token=TOKEN, base_url=slack.api_url, retry_handlers=[])
        for text in ("one", "two"):
            client.chat_postMessage(channel="C0OPS", text=text)
        limited = slack_error(lambda: client.chat_postMessage(channel="C0OPS", text="three"))
        client.chat_postMessage(channel="C0DEPLOY", text="other channel")
        clock.now += 1.0
        client.chat_postMessage(channel="C0OPS", text="three again")

        assert (limited.response.status_code, limited.response.headers["Retry-After"]) == (429, "1")
        assert [m.text for m in slack.messages("C0OPS")] == ["one", "two", "three again"]


# -- directory -------------------------------------------------------------------------


def test_usergroups_and_users(client: WebClient) -> None:
    members = client.usergroups_users_list(usergroup="S0ONCALL")
    groups = client.usergroups_list(include_users=True)
    alice = client.users_info(user="U0ALICE")["user"]
    no_group = slack_error(lambda: client.usergroups_users_list(usergroup="S0NOPE"))
    no_user = slack_error(lambda: client.users_info(user="U0NOPE"))

    assert members["users"] == ["U0ALICE", "U0BOB"]
    assert [(g["id"], g["handle"], g["users"]) for g in groups["usergroups"]] == [("S0ONCALL", "platform-oncall", ["U0ALICE", "U0BOB"])]
    assert (alice["name"], alice["profile"]["display_name"]) == ("alice", "alice")
    assert no_group.response["error"] == "no_such_subteam"
    assert no_user.response["error"] == "user_not_found"


# -- files -----------------------------------------------------------------------------


def test_files_upload_v2_end_to_end(slack: FakeSlackApi, client: WebClient) -> None:
    parent = client.chat_postMessage(channel="C0OPS", text="runbook finished")

    answer = client.files_upload_v2(
        channel="C0OPS",
        thread_ts=parent["ts"],
        content="line 1\nline 2\n",
        filename="output.log",
        title="Runbook output",
        initial_comment="full log",
    )

    (upload,) = slack.uploads
    assert answer["file"]["id"] == upload.file_id
    assert (upload.channel, upload.thread_ts, upload.title, upload.filename) == ("C0OPS", parent["ts"], "Runbook output", "output.log")
    assert (upload.content, upload.initial_comment) == (b"line 1\nline 2\n", "full log")
    methods = [call.method for call in slack.calls]
    assert methods == ["chat.postMessage", "files.getUploadURLExternal", "file_upload", "files.completeUploadExternal"]


def test_completing_a_file_that_was_never_uploaded_fails(slack: FakeSlackApi, client: WebClient) -> None:
    issued = client.files_getUploadURLExternal(filename="a.txt", length=3)

    refused = slack_error(lambda: client.files_completeUploadExternal(files=[{"id": issued["file_id"]}], channel_id="C0OPS"))

    assert refused.response["error"] == "file_not_found"
    assert slack.uploads == []


# -- response_url ----------------------------------------------------------------------


def test_response_url_allows_five_uses_and_refuses_the_sixth(slack: FakeSlackApi) -> None:
    webhook = WebhookClient(slack.response_url("C0OPS", "U0ALICE"))

    answers = [webhook.send(text=f"progress {n}") for n in range(1, 7)]

    assert [a.status_code for a in answers] == [200] * 5 + [404]
    assert "used_url" in answers[5].body
    assert [e.text for e in slack.ephemerals(user="U0ALICE")] == [f"progress {n}" for n in range(1, 6)]


def test_response_url_in_channel_replace_and_delete(slack: FakeSlackApi) -> None:
    webhook = WebhookClient(slack.response_url("C0OPS", "U0ALICE"))

    posted = webhook.send(text="rollout started", response_type="in_channel")
    replaced = webhook.send(text="rollout done", blocks=[section("*done*")], replace_original=True)

    assert (posted.status_code, replaced.status_code) == (200, 200)
    (message,) = slack.messages("C0OPS")
    assert (message.text, message.blocks, message.edited_count) == ("rollout done", [section("*done*")], 1)
    assert webhook.send(delete_original=True).status_code == 200
    assert slack.messages("C0OPS") == []


def test_response_url_of_a_button_replaces_the_clicked_message(slack: FakeSlackApi, client: WebClient) -> None:
    approval = client.chat_postMessage(channel="C0OPS", text="approve?", blocks=[{"type": "actions", "elements": [button("approve")]}])
    webhook = WebhookClient(slack.response_url("C0OPS", "U0BOB", message_ts=approval["ts"]))

    webhook.send(text="approved by bob", replace_original=True)

    (message,) = slack.messages("C0OPS")
    assert (message.ts, message.text, message.blocks) == (approval["ts"], "approved by bob", None)


def test_response_url_expires_after_thirty_minutes_and_rejects_bad_bodies() -> None:
    clock = FakeClock()
    with FakeSlackApi(token=TOKEN, channels=CHANNELS, clock=clock) as slack:
        webhook = WebhookClient(slack.response_url("C0OPS", "U0ALICE"))
        invalid = webhook.send(text="t", blocks=[section("x" * 3001)])
        empty = webhook.send_dict({"response_type": "ephemeral"})
        clock.now += 30 * 60 + 1
        expired = webhook.send(text="too late")

        assert (invalid.status_code, empty.status_code, expired.status_code) == (400, 400, 404)
        assert "invalid_blocks" in invalid.body and "no_text" in empty.body and "expired_url" in expired.body
        assert slack.ephemerals() == []


# -- waiting, delays and Bolt ------------------------------------------------------------


def test_wait_for_sees_calls_from_other_threads_and_explains_timeouts(slack: FakeSlackApi, client: WebClient) -> None:
    slack.delay("chat.postMessage", 0.3)
    poster = threading.Thread(target=lambda: client.chat_postMessage(channel="C0OPS", text="slow"))
    poster.start()

    in_flight = slack.wait_for(lambda: slack.calls_to("chat.postMessage")[0])
    message = slack.wait_for(lambda: slack.messages("C0OPS")[0])
    poster.join()

    assert in_flight.status is None, "recorded on arrival, before the delayed answer"
    assert message.text == "slow"
    with pytest.raises(AssertionError, match=r"(?s)still false.*chat\.postMessage.*'slow'"):
        slack.wait_for(lambda: slack.messages("C0DEPLOY"), timeout=0.1, what="a deploy message")


def test_bolt_app_starts_against_the_fake(slack: FakeSlackApi) -> None:
    from slack_bolt import App

    app = App(signing_secret="secret", client=WebClient(token=TOKEN, base_url=slack.api_url))

    assert app.client.base_url == slack.api_url
    assert [call.method for call in slack.calls] == ["auth.test"]
