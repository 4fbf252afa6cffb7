"""The fake Slack Web API's surfaces (modals and the Home tab), driven by the real slack_sdk client.

opsbot's forms and Home tab are only as trustworthy as the fake they are tested against: if
the fake accepted a 30-character modal title or a reused trigger_id, a form that passes here
would fail in front of the person on call. Each test pins one documented Slack rule.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from fakes.slack import FakeSlackApi

TOKEN = "xoxb-test"
USERS = {"U0ALICE": "alice", "U0BOB": "bob"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def slack(clock: FakeClock) -> Iterator[FakeSlackApi]:
    with FakeSlackApi(token=TOKEN, users=USERS, clock=clock, timezones={"U0BOB": "Europe/Paris"}) as fake:
        yield fake


@pytest.fixture
def client(slack: FakeSlackApi) -> WebClient:
    return WebClient(token=TOKEN, base_url=slack.api_url, retry_handlers=[])


def text_input(block_id: str, action_id: str, label: str = "Version") -> dict[str, Any]:
    return {
        "type": "input",
        "block_id": block_id,
        "label": {"type": "plain_text", "text": label},
        "element": {"type": "plain_text_input", "action_id": action_id},
    }


def option(value: str) -> dict[str, Any]:
    return {"text": {"type": "plain_text", "text": value}, "value": value}


def select_input(block_id: str, action_id: str, values: list[str], initial: str | None = None) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "static_select", "action_id": action_id, "options": [option(v) for v in values]}
    if initial is not None:
        element["initial_option"] = option(initial)
    return {"type": "input", "block_id": block_id, "label": {"type": "plain_text", "text": "Env"}, "element": element}


def modal(*blocks: dict[str, Any], title: str = "Deploy", submit: str | None = "Request", **extra: Any) -> dict[str, Any]:
    view: dict[str, Any] = {
        "type": "modal",
        "callback_id": "opsbot_form",
        "title": {"type": "plain_text", "text": title},
        "blocks": list(blocks),
    }
    if submit is not None:
        view["submit"] = {"type": "plain_text", "text": submit}
    view.update(extra)
    return view


def refused(call: Any) -> dict[str, Any]:
    with pytest.raises(SlackApiError) as caught:
        call()
    return dict(caught.value.response.data)


def test_a_modal_opens_once_per_trigger_id(slack: FakeSlackApi, client: WebClient) -> None:
    trigger = slack.trigger_id("U0ALICE")
    opened = client.views_open(trigger_id=trigger, view=modal(text_input("version", "version")))
    view_id = opened["view"]["id"]
    assert slack.open_modals("U0ALICE")[0].id == view_id
    assert slack.view(view_id).callback_id == "opsbot_form"
    assert refused(lambda: client.views_open(trigger_id=trigger, view=modal()))["error"] == "exchanged_trigger_id"
    assert refused(lambda: client.views_open(trigger_id="123.456.abc", view=modal()))["error"] == "invalid_trigger_id"


def test_a_trigger_id_expires_after_three_seconds(slack: FakeSlackApi, client: WebClient, clock: FakeClock) -> None:
    trigger = slack.trigger_id("U0ALICE")
    clock.now += 3.5
    assert refused(lambda: client.views_open(trigger_id=trigger, view=modal()))["error"] == "expired_trigger_id"
    assert slack.open_modals("U0ALICE") == []


@pytest.mark.parametrize(
    ("view", "pointer"),
    [
        (modal(title="Deploy checkout to production now"), "/view/title/text"),
        (modal(text_input("v", "v"), submit=None), "/view/submit"),
        (modal(*[text_input(f"b{i}", f"a{i}") for i in range(101)]), "/view/blocks"),
        (modal(select_input("env", "env", ["staging", "production"], initial="prod")), "/view/blocks/0/element/initial_option"),
        (modal(private_metadata="x" * 3001), "/view/private_metadata"),
        (
            modal(
                {
                    "type": "input",
                    "label": {"type": "plain_text", "text": "Replicas"},
                    "element": {"type": "number_input", "action_id": "n", "is_decimal_allowed": False, "min_value": "5", "max_value": "1"},
                }
            ),
            "/view/blocks/0/element/min_value",
        ),
    ],
    ids=["title-over-24", "inputs-without-submit", "101-blocks", "initial-option-not-listed", "metadata-over-3000", "min-above-max"],
)
def test_a_view_beyond_slacks_limits_is_refused_with_a_pointer(
    slack: FakeSlackApi, client: WebClient, view: dict[str, Any], pointer: str
) -> None:
    answer = refused(lambda: client.views_open(trigger_id=slack.trigger_id("U0ALICE"), view=view))
    assert answer["error"] == "invalid_arguments"
    assert any(f"[json-pointer:{pointer}" in line for line in answer["response_metadata"]["messages"]), answer
    assert slack.views_shown() == []


def test_updates_take_the_latest_hash_and_refuse_a_stale_one(slack: FakeSlackApi, client: WebClient) -> None:
    opened = client.views_open(
        trigger_id=slack.trigger_id("U0ALICE"), view=modal(select_input("env", "env", ["staging"]), external_id="form-1")
    )
    first_hash = opened["view"]["hash"]
    updated = client.views_update(
        view_id=opened["view"]["id"], hash=first_hash, view=modal(select_input("env", "env", ["staging", "production"]))
    )
    assert updated["view"]["hash"] != first_hash
    assert len(slack.view(opened["view"]["id"]).blocks[0]["element"]["options"]) == 2
    stale = refused(lambda: client.views_update(view_id=opened["view"]["id"], hash=first_hash, view=modal()))
    assert stale["error"] == "hash_conflict"
    assert refused(lambda: client.views_update(external_id="no-such-form", view=modal()))["error"] == "not_found"


def test_a_modal_stack_holds_three_views(slack: FakeSlackApi, client: WebClient) -> None:
    client.views_open(trigger_id=slack.trigger_id("U0ALICE"), view=modal())
    client.views_push(trigger_id=slack.trigger_id("U0ALICE"), view=modal(title="Step 2"))
    client.views_push(trigger_id=slack.trigger_id("U0ALICE"), view=modal(title="Step 3"))
    assert (
        refused(lambda: client.views_push(trigger_id=slack.trigger_id("U0ALICE"), view=modal(title="Step 4")))["error"]
        == "push_limit_reached"
    )
    stack = slack.open_modals("U0ALICE")
    assert [v.payload["title"]["text"] for v in stack] == ["Deploy", "Step 2", "Step 3"]
    assert stack[2].previous_view_id == stack[1].id and stack[2].root_view_id == stack[0].id
    slack.close_modals("U0ALICE")
    assert refused(lambda: client.views_update(view_id=stack[0].id, view=modal()))["error"] == "not_found"


def test_the_home_tab_is_published_per_user_and_replaced(slack: FakeSlackApi, client: WebClient) -> None:
    home = {"type": "home", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "Your requests: none"}}]}
    first = client.views_publish(user_id="U0ALICE", view=home)
    again = client.views_publish(
        user_id="U0ALICE",
        view={**home, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "1 waiting"}}]},
        hash=first["view"]["hash"],
    )
    published = slack.home("U0ALICE")
    assert published is not None and published.id == again["view"]["id"] == first["view"]["id"]
    assert published.blocks[0]["text"]["text"] == "1 waiting"
    assert slack.home("U0BOB") is None
    assert refused(lambda: client.views_publish(user_id="U0ALICE", view=modal()))["error"] == "invalid_arguments"
    assert refused(lambda: client.views_publish(user_id="U0NOBODY", view=home))["error"] == "user_not_found"
    assert refused(lambda: client.views_publish(user_id="U0ALICE", view=home, hash=first["view"]["hash"]))["error"] == "hash_conflict"


def test_a_home_tab_holds_at_most_100_blocks(slack: FakeSlackApi, client: WebClient) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": f"run {i}"}} for i in range(101)]
    answer = refused(lambda: client.views_publish(user_id="U0ALICE", view={"type": "home", "blocks": blocks}))
    assert answer["error"] == "invalid_arguments"
    client.views_publish(user_id="U0ALICE", view={"type": "home", "blocks": blocks[:100]})


def test_a_submission_carries_what_was_entered_as_slack_sends_it(slack: FakeSlackApi, client: WebClient) -> None:
    opened = client.views_open(
        trigger_id=slack.trigger_id("U0BOB"),
        view=modal(text_input("version", "version"), select_input("env", "env", ["staging", "production"])),
    )
    payload = slack.submission(opened["view"]["id"], "U0BOB", {"version": "1.4.2", "env": "production"})
    values = payload["view"]["state"]["values"]  # type: ignore[index]
    assert values["version"]["version"] == {"type": "plain_text_input", "value": "1.4.2"}
    assert values["env"]["env"]["selected_option"]["value"] == "production"
    with pytest.raises(ValueError, match="not among the select's options"):
        slack.submission(opened["view"]["id"], "U0BOB", {"env": "qa"})


def test_users_info_reports_the_users_time_zone(slack: FakeSlackApi, client: WebClient) -> None:
    bob = client.users_info(user="U0BOB")["user"]
    assert bob["tz"] == "Europe/Paris" and bob["tz_offset"] in (3600, 7200)
    assert client.users_info(user="U0ALICE")["user"]["tz"] == "Etc/UTC"


def test_inputs_left_untouched_are_submitted_with_their_initial_values(slack: FakeSlackApi, client: WebClient) -> None:
    prefilled = {
        **text_input("version", "version"),
        "element": {"type": "plain_text_input", "action_id": "version", "initial_value": "1.4.1"},
    }
    opened = client.views_open(
        trigger_id=slack.trigger_id("U0BOB"),
        view=modal(
            prefilled, select_input("env", "env", ["staging", "production"], initial="staging"), text_input("reason", "reason", "Reason")
        ),
    )
    values = slack.submission(opened["view"]["id"], "U0BOB", {})["view"]["state"]["values"]  # type: ignore[index]
    assert values["version"]["version"]["value"] == "1.4.1"
    assert values["env"]["env"]["selected_option"]["value"] == "staging"
    assert values["reason"]["reason"] == {"type": "plain_text_input", "value": None}
