"""The App Home through ``opsbot serve``'s process model: HTTP workers ack, the executor publishes.

``app_home_opened`` is handed over like a command (pickled, over the executor's socket); the
home's Approve button goes through the same click path as the channel's, in the executor.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from bot.messages import ButtonAction
from bot.store import home as home_store
from bot.store.states import RequestState
from fakes.slack import FakeSlackApi
from fakes.slack.api import View
from tests.integration.serve_support import (
    DEVELOPER,
    ONCALL_ONE,
    USERS,
    DatabaseView,
    OpsbotProcess,
    fake_cluster,
    fake_slack,
    opsbot_serve,
    run_cli,
    serve_environment,
    write_config,
)
from tests.integration.slack_support import SIGNING_SECRET, TEAM_ID, form_payload, signed_headers, wait_until


def open_home(server: OpsbotProcess, user_id: str) -> int:
    body = json.dumps(
        {
            "team_id": TEAM_ID,
            "api_app_id": "A0FAKE",
            "type": "event_callback",
            "event_id": f"Ev{user_id}",
            "event_time": int(time.time()),
            "event": {"type": "app_home_opened", "user": user_id, "channel": "D" + user_id[1:], "tab": "home"},
        }
    ).encode()
    headers = {**signed_headers(SIGNING_SECRET, body), "Content-Type": "application/json"}
    return server.http.post("/slack/events", content=body, headers=headers).status_code


def click_on_home(server: OpsbotProcess, user_id: str, home: View, action: ButtonAction) -> int:
    for block in home.blocks:
        for element in block.get("elements", []) if block["type"] == "actions" else []:
            if element["action_id"] == action:
                payload = {
                    "type": "block_actions",
                    "user": {"id": user_id, "username": USERS[user_id], "team_id": TEAM_ID},
                    "container": {"type": "view", "view_id": home.id},
                    "team": {"id": TEAM_ID, "domain": "fake"},
                    "view": home.to_slack(TEAM_ID, "B0BOT"),
                    "actions": [{**element, "block_id": block["block_id"], "action_ts": f"{time.time():.6f}"}],
                }
                return server.post_signed(form_payload(payload)).status_code
    raise LookupError(f"no {action} on the home")


def viewed(database: DatabaseView, user_id: str) -> str | None:
    """The home view opsbot recorded for ``user_id`` (a click from another is refused; a test clicks faster than a person)."""
    with database.database.reading() as session:
        return home_store.published_view(session, user_id)


def home_with(slack: FakeSlackApi, user_id: str, fragment: str) -> View:
    return slack.wait_for(
        lambda: home if (home := slack.home(user_id)) is not None and fragment in json.dumps(home.blocks) else None,
        60,
        what=f"{user_id}'s home to show {fragment!r}",
    )


def test_the_executor_publishes_the_home_and_its_approve_button_deploys(tmp_path: Path, sqlite_url: str) -> None:
    with fake_slack() as slack, fake_cluster() as kube:
        env = serve_environment(
            slack, database_url=sqlite_url, config_path=write_config(tmp_path, kube), instance_id="pod-home", metrics_dir=tmp_path / "m"
        )
        assert run_cli(env, "db", "upgrade").returncode == 0
        database = DatabaseView(sqlite_url)
        try:
            with opsbot_serve("pod-home", env, tmp_path, workers=2) as server:
                assert open_home(server, ONCALL_ONE) == 200
                home_with(slack, ONCALL_ONE, "Nothing waits for your approval.")

                server.command(slack, DEVELOPER, "deploy checkout 1.4.2 to production")
                request = database.wait_for_request()
                home = home_with(slack, ONCALL_ONE, ButtonAction.APPROVE.value)
                wait_until(lambda: viewed(database, ONCALL_ONE) == home.id, 30, what="opsbot to record the home view it published")

                assert click_on_home(server, ONCALL_ONE, home, ButtonAction.APPROVE) == 200
                database.wait_for_state(request.id, RequestState.SUCCEEDED)
                home_with(slack, ONCALL_ONE, "succeeded")
        finally:
            database.close()
