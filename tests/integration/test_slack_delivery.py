"""SlackNotifier, SlackReplier and SlackUserGroups against the fake Slack Web API over real HTTP."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY
from slack_sdk import WebClient

from bot.catalog.config import OpsbotConfig
from bot.messages import Button, ButtonAction, Message
from bot.requests.groups import GroupDirectory
from bot.slack.notifier import SlackNotifier, retry_handlers
from bot.slack.replier import RESPONSE_URL_MAX_USES, SlackReplier
from bot.slack.usergroups import GroupLookupFailed, SlackUserGroups
from fakes.slack import RESPONSE_URL_CALL, FakeSlackApi
from tests.integration.slack_support import CHANNEL


class ManualClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def client(slack: FakeSlackApi) -> WebClient:
    return WebClient(token=slack.token, base_url=slack.api_url, retry_handlers=retry_handlers())


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# -- notifier --------------------------------------------------------------------------------


def test_post_then_update_edits_the_same_message_in_place(slack: FakeSlackApi, client: WebClient) -> None:
    notifier = SlackNotifier(client)
    ref = notifier.post(CHANNEL, Message(text="deploying", title="Deploy", sections=("step 1",)))
    assert ref is not None

    notifier.update(
        ref, Message(text="deployed", title="Deploy", sections=("done",), buttons=(Button(ButtonAction.CANCEL, "Stop", "1:a:b"),))
    )

    [message] = slack.messages(CHANNEL)
    assert (message.ts, message.text, message.edited_count) == (ref.ts, "deployed", 1)
    assert "done" in str(message.blocks)


def test_ok_false_is_logged_and_counted_never_raised(slack: FakeSlackApi, client: WebClient) -> None:
    before = metric("opsbot_slack_api_errors_total", method="chat.postMessage", error="is_archived")
    slack.fail_next("chat.postMessage", "is_archived")

    ref = SlackNotifier(client).post(CHANNEL, Message.plain("hello"))

    assert ref is None
    assert metric("opsbot_slack_api_errors_total", method="chat.postMessage", error="is_archived") == before + 1


def test_a_429_on_update_waits_retry_after_then_the_message_ends_right(slack: FakeSlackApi, client: WebClient) -> None:
    notifier = SlackNotifier(client)
    ref = notifier.post(CHANNEL, Message.plain("running"))
    assert ref is not None
    before = metric("opsbot_slack_ratelimited_total", method="chat.update")
    slack.rate_limit("chat.update", times=1, retry_after=1)

    notifier.update(ref, Message.plain("succeeded"))

    limited, retried = slack.calls_to("chat.update")
    assert (limited.status, retried.status) == (429, 200)
    assert retried.at - limited.at >= 1.0, "the retry honoured Retry-After"
    assert slack.messages(CHANNEL)[0].text == "succeeded"
    assert metric("opsbot_slack_ratelimited_total", method="chat.update") == before + 1


def test_a_message_too_long_for_slack_is_posted_short_with_the_full_text_as_a_file(slack: FakeSlackApi, client: WebClient) -> None:
    sections = tuple(f"output line {index}" for index in range(120))

    ref = SlackNotifier(client).post(CHANNEL, Message(text="long", title="Long output", sections=sections))

    assert ref is not None
    [upload] = slack.uploads
    assert upload.thread_ts == ref.ts and upload.channel == CHANNEL
    assert all(section in upload.text for section in sections)
    assert "attached as a file" in str(slack.messages(CHANNEL)[0].blocks)


def test_a_refused_upload_is_posted_in_the_thread_in_parts_instead(slack: FakeSlackApi, client: WebClient) -> None:
    notifier = SlackNotifier(client)
    ref = notifier.post(CHANNEL, Message.plain("parent"))
    assert ref is not None
    slack.fail_next("files.getUploadURLExternal", "not_allowed_token_type")
    content = "\n".join(f"detail {index:04d} " + "d" * 70 for index in range(300))

    notifier.upload(CHANNEL, "details.txt", content, thread=ref)

    replies = slack.thread(CHANNEL, ref.ts)[1:]
    assert len(replies) >= 2 and not slack.uploads
    shown = "".join(str(reply.blocks) for reply in replies)
    assert all(f"detail {index:04d}" in shown for index in range(300))


# -- replier ---------------------------------------------------------------------------------


def test_replies_use_the_response_url_five_times_then_chat_post_ephemeral(slack: FakeSlackApi, client: WebClient) -> None:
    replier = SlackReplier(client, user_id="U0REQ", channel=CHANNEL, response_url=slack.response_url(CHANNEL, "U0REQ"))

    for index in range(RESPONSE_URL_MAX_USES + 2):
        replier.private(Message.plain(f"reply {index}"))

    assert len(slack.calls_to(RESPONSE_URL_CALL)) == RESPONSE_URL_MAX_USES
    assert len(slack.calls_to("chat.postEphemeral")) == 2
    assert [ephemeral.text for ephemeral in slack.ephemerals(user="U0REQ")] == [f"reply {index}" for index in range(7)]


def test_an_expired_response_url_is_not_tried(slack: FakeSlackApi, client: WebClient) -> None:
    clock = ManualClock()
    replier = SlackReplier(client, user_id="U0REQ", channel=CHANNEL, response_url=slack.response_url(CHANNEL, "U0REQ"), clock=clock)
    clock.now += 30 * 60

    replier.private(Message.plain("late"))

    assert not slack.calls_to(RESPONSE_URL_CALL)
    assert [ephemeral.via for ephemeral in slack.ephemerals(user="U0REQ")] == ["chat.postEphemeral"]


def test_a_response_url_slack_refuses_falls_back_to_chat_post_ephemeral(slack: FakeSlackApi, client: WebClient) -> None:
    url = slack.response_url(CHANNEL, "U0REQ")
    other = SlackReplier(client, user_id="U0REQ", channel=CHANNEL, response_url=url)
    for index in range(RESPONSE_URL_MAX_USES):
        other.private(Message.plain(f"used {index}"))
    replier = SlackReplier(client, user_id="U0REQ", channel=CHANNEL, response_url=url)

    replier.private(Message.plain("after"))
    replier.private(Message.plain("after again"))

    assert slack.calls_to(RESPONSE_URL_CALL)[-1].status == 404
    assert len(slack.calls_to(RESPONSE_URL_CALL)) == RESPONSE_URL_MAX_USES + 1, "a refused URL is not tried again"
    assert [ephemeral.text for ephemeral in slack.ephemerals(user="U0REQ")][-2:] == ["after", "after again"]


def test_a_click_reply_never_replaces_the_approval_message(slack: FakeSlackApi, client: WebClient) -> None:
    ref = SlackNotifier(client).post(CHANNEL, Message.plain("approval"))
    assert ref is not None
    url = slack.response_url(CHANNEL, "U0REQ", message_ts=ref.ts)

    SlackReplier(client, user_id="U0REQ", channel=CHANNEL, response_url=url).private(Message.plain("you cannot approve"))

    assert slack.messages(CHANNEL)[0].text == "approval"
    assert slack.calls_to(RESPONSE_URL_CALL)[0].params["replace_original"] is False


# -- user groups -----------------------------------------------------------------------------


def test_handles_resolve_to_members_and_are_cached_for_the_ttl(slack: FakeSlackApi, client: WebClient) -> None:
    clock = ManualClock()
    groups = SlackUserGroups(client, ttl_seconds=300, clock=clock)

    assert groups("@platform-oncall") == {"U0GRP"}
    assert groups("@Platform-Oncall") == {"U0GRP"}
    assert groups("S0ONCALL") == {"U0GRP"}
    assert (len(slack.calls_to("usergroups.list")), len(slack.calls_to("usergroups.users.list"))) == (1, 1)

    clock.now += 301
    assert groups("S0ONCALL") == {"U0GRP"}
    assert len(slack.calls_to("usergroups.users.list")) == 2


def test_when_slack_fails_the_stale_membership_is_served(slack: FakeSlackApi, client: WebClient) -> None:
    clock = ManualClock()
    groups = SlackUserGroups(client, ttl_seconds=300, clock=clock)
    assert groups("S0ONCALL") == {"U0GRP"}
    clock.now += 301
    slack.fail_next("usergroups.users.list", "fatal_error")

    assert groups("S0ONCALL") == {"U0GRP"}


def test_never_loaded_and_slack_down_fails_closed(slack: FakeSlackApi, client: WebClient) -> None:
    slack.fail_next("usergroups.users.list", "fatal_error", times=2)
    groups = SlackUserGroups(client)
    config = OpsbotConfig.model_construct(groups={"approvers": ["S0ONCALL"]}, services={})

    with pytest.raises(GroupLookupFailed):
        groups("S0ONCALL")
    assert GroupDirectory(config, groups).members("approvers") == frozenset()


def test_an_unknown_handle_has_no_members(slack: FakeSlackApi, client: WebClient) -> None:
    assert SlackUserGroups(client)("@nobody-here") == frozenset()
