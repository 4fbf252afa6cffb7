"""A replica killed with ``kill -9`` in the middle of a rollout: another replica finishes the story.

Replica A starts a staging deploy whose new pods never become ready (a ``-broken`` image with
a progress deadline far away), so the run is still waiting for the rollout when A is killed,
supervisor and workers at once, the way an OOM kill or a lost node ends a pod. Replica B
starts on the same database; its recovery sweep finds the lapsed lease, marks the request
``interrupted``, frees the target and tells people in Slack. Both run with a 3-second lease
and a 1-second sweep (``OPSBOT_RUN_LEASE_SECONDS``, ``OPSBOT_MAINTENANCE_SECONDS``), so every
wait below is a condition with a generous timeout, never a measured duration.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.store.states import RequestState
from fakes.kubernetes import FakeKubernetesServer
from fakes.slack import FakeSlackApi
from tests.integration.serve_support import (
    CHANNEL,
    DEVELOPER,
    IMAGE,
    INCIDENT_CHANNEL,
    DatabaseView,
    fake_cluster,
    opsbot_serve,
    run_cli,
    serve_environment,
    write_config,
)
from tests.integration.slack_support import migrated, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

SHORT_LEASE = {"OPSBOT_RUN_LEASE_SECONDS": "3", "OPSBOT_MAINTENANCE_SECONDS": "1"}


@pytest.fixture
def kube() -> Iterator[FakeKubernetesServer]:
    # A deadline of a simulated day: the broken rollout stays "in progress" for the whole test.
    with fake_cluster(progress_deadline_seconds=86_400) as server:
        yield server


def test_a_run_whose_replica_was_killed_is_interrupted_and_its_lock_released(
    tmp_path: Path, postgres_url: str, kube: FakeKubernetesServer, slack: FakeSlackApi
) -> None:
    url = migrated(postgres_url)
    config = write_config(tmp_path, kube)

    def environment(name: str) -> dict[str, str]:
        return serve_environment(
            slack, database_url=url, config_path=config, instance_id=f"replica-{name}", metrics_dir=tmp_path / name, **SHORT_LEASE
        )

    db = DatabaseView(url)
    try:
        with opsbot_serve("a", environment("a"), tmp_path) as a:
            assert a.command(slack, DEVELOPER, "deploy checkout 1.5.0-broken to staging").status_code == 200
            request = db.wait_for_request()
            db.wait_for_state(request.id, RequestState.RUNNING)
            wait_until(lambda: staging_image(kube) == f"{IMAGE}:1.5.0-broken", timeout=30, what="the first step to patch the Deployment")
            wait_until(lambda: lease_renewed(db, request.id), timeout=30, what="A's heartbeat to renew the lease past two leases")
            assert db.request(request.id).state == RequestState.RUNNING, "a live replica keeps its run"

            a.kill()

        assert db.request(request.id).state == RequestState.RUNNING, "nobody may finish the run of a dead replica but the sweep"
        with opsbot_serve("b", environment("b"), tmp_path) as b:
            interrupted = db.wait_for_state(request.id, RequestState.INTERRUPTED, timeout=60)

            assert "stopped before it finished" in (interrupted.result or "")
            events = db.events(request.id)
            assert [event.event for event in events].count("interrupted") == 1
            assert events[-1].event == "interrupted"
            assert json.loads(events[-1].details)["runner"] == "replica-a", "the audit log names the replica that died"
            assert db.lock("checkout", "staging") is None, "the target's lock went with the run"
            assert_people_were_told(slack, request.id)
            metrics = b.http.get("/metrics").text
            assert 'opsbot_run_duration_seconds_count{result="interrupted",runbook="deploy"} 1.0' in metrics
            verified = run_cli(environment("b"), "audit", "verify")
            assert verified.returncode == 0, verified.stderr

            assert b.command(slack, DEVELOPER, "deploy checkout 1.5.1 to staging").status_code == 200
            retry = db.wait_for_request(after=request.id)
            done = db.wait_for_state(retry.id, RequestState.SUCCEEDED, RequestState.FAILED, RequestState.ROLLED_BACK, timeout=60)
            assert done.state == RequestState.SUCCEEDED, done.result
            assert done.runner_id == "replica-b"
            assert staging_image(kube) == f"{IMAGE}:1.5.1"
    finally:
        db.close()


def assert_people_were_told(slack: FakeSlackApi, request_id: int) -> None:
    """The request's message says interrupted, its thread explains, the incident channel hears of it."""
    root = next(m for m in slack.messages(CHANNEL) if m.thread_ts is None and f"#{request_id} " in m.text)
    slack.wait_for(lambda: current_text(slack, root.ts).endswith("interrupted (the bot stopped while it ran)"), timeout=30)
    note = slack.wait_for(lambda: [m for m in slack.thread(CHANNEL, root.ts) if m.ts != root.ts and "Interrupted" in m.text], timeout=30)
    assert "check it with `status`" in note[0].text
    incident = slack.wait_for(lambda: [m for m in slack.messages(INCIDENT_CHANNEL) if f"(#{request_id})" in m.text], timeout=30)
    assert "was interrupted" in incident[0].text


def current_text(slack: FakeSlackApi, ts: str) -> str:
    return next(m.text for m in slack.messages(CHANNEL) if m.ts == ts)


def staging_image(kube: FakeKubernetesServer) -> Any:
    return kube.deployment("staging", "shop", "checkout")["spec"]["template"]["spec"]["containers"][0]["image"]


def lease_renewed(db: DatabaseView, request_id: int) -> bool:
    """A's heartbeat kept the 3-second lease going beyond two leases: alive means never swept."""
    row = db.request(request_id)
    return row.started_at is not None and row.lease_expires_at is not None and (row.lease_expires_at - row.started_at).total_seconds() > 6
