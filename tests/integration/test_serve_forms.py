"""Forms through `opsbot serve` as it runs in production: an HTTP worker acks, the executor opens the form.

The worker has no backends: the form (policy-filtered, with the Deployment's past versions) is
drawn by the executor, the version options are answered by the worker from the form itself,
and the submission is parsed in the worker into the same request as the typed command.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlencode

from bot.audit.binding import params_hash
from fakes.slack import FakeSlackApi
from fakes.slack.views import View
from tests.integration.serve_support import (
    CHANNEL,
    DEVELOPER,
    DatabaseView,
    fake_cluster,
    fake_slack,
    opsbot_serve,
    run_cli,
    serve_environment,
    write_config,
)
from tests.integration.slack_support import command_form, form_payload


def form_with_versions(slack: FakeSlackApi, user_id: str) -> View | None:
    stack = slack.open_modals(user_id)
    return stack[-1] if stack and json.loads(stack[-1].private_metadata or "{}").get("versions") else None


def test_a_form_opened_by_the_executor_is_submitted_through_a_worker_as_the_typed_request(tmp_path: Path, sqlite_url: str) -> None:
    with fake_slack() as slack, fake_cluster() as kube:
        env = serve_environment(
            slack, database_url=sqlite_url, config_path=write_config(tmp_path, kube), instance_id="pod-f", metrics_dir=tmp_path / "m"
        )
        assert run_cli(env, "db", "upgrade").returncode == 0
        database = DatabaseView(sqlite_url)
        with opsbot_serve("pod-f", env, tmp_path, workers=1) as server:
            fields = {**command_form(slack, DEVELOPER, CHANNEL, "deploy checkout"), "trigger_id": slack.trigger_id(DEVELOPER)}
            ack = server.post_signed(urlencode(fields).encode())
            form = slack.wait_for(lambda: form_with_versions(slack, DEVELOPER), 30, what="the deploy form with the checkout history")
            view = slack.submission(form.id, DEVELOPER, {})["view"]
            asked = {
                "type": "block_suggestion", "team": {"id": "T0FAKE"}, "user": {"id": DEVELOPER, "team_id": "T0FAKE"},
                "action_id": "opsbot_form:version", "block_id": "version~checkout", "value": "", "view": view,
            }  # fmt: skip
            options = server.post_signed(form_payload(asked)).json()["options"]
            submitted = slack.submission(form.id, DEVELOPER, {"opsbot_form:version": "1.4.2", "opsbot_form:channel": CHANNEL})
            answer = server.post_signed(form_payload(submitted))
            row = database.wait_for_request()
        database.close()

    assert ack.json()["text"] == "Opening the `deploy` form for the values left out…"
    assert [option["value"] for option in options] == ["1.4.1"], "what the Deployment ran, read by the executor"
    assert answer.status_code == 200 and not answer.content, "the modal closes"
    assert row.params == {"service": "checkout", "version": "1.4.2", "env": "staging"}
    assert row.params_hash == params_hash({"service": "checkout", "version": "1.4.2", "env": "staging"})
    assert (row.requester_id, row.channel) == (DEVELOPER, CHANNEL)
