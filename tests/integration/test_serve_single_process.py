"""`opsbot serve` with default settings is one process: it acks, does the work after the ack, and rolls out.

A small team's bot should cost one interpreter, not six (docs/operations.md, sizing): by default
the core lives beside the HTTP event loop. These tests run the real server with no process
settings at all and check what a person would notice (the reply, the rollout) and what an
operator would see (one process, the probes, a clean stop).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from bot.store.states import RequestState
from tests.integration.serve_support import DatabaseView, fake_cluster, fake_slack, opsbot_serve, serve_environment, write_config
from tests.integration.slack_support import migrated

DEVELOPER = "U0DEV"


def children_of(pid: int) -> list[str]:
    return subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False).stdout.split()


def test_default_serve_is_one_process_that_answers_and_rolls_out(tmp_path: Path) -> None:
    with fake_slack() as slack, fake_cluster() as kube:
        url = migrated(f"sqlite:///{tmp_path}/opsbot.db")
        env = serve_environment(
            slack, database_url=url, config_path=write_config(tmp_path, kube), instance_id="one", metrics_dir=tmp_path / "m"
        )
        del env["PROMETHEUS_MULTIPROC_DIR"]  # nothing about processes is set: the defaults
        database = DatabaseView(url)
        try:
            with opsbot_serve("one", env, tmp_path) as server:
                assert server.http.get("/readyz").json() == {"status": "ready"}
                assert children_of(server.process.pid) == [], "no executor, no HTTP worker, no helper process"

                help_ack = server.command(slack, DEVELOPER, "help")
                deploy_ack = server.command(slack, DEVELOPER, "deploy checkout 1.4.2 to staging")

                assert help_ack.status_code == deploy_ack.status_code == 200
                slack.wait_for(lambda: [e for e in slack.ephemerals(user=DEVELOPER) if "Runbooks" in str(e.blocks) + e.text], timeout=30)
                request = database.wait_for_request()
                database.wait_for_state(request.id, RequestState.SUCCEEDED, timeout=60)
                assert kube.deployment("staging", "shop", "checkout")["spec"]["template"]["spec"]["containers"][0]["image"].endswith(
                    ":1.4.2"
                )
                assert server.stop() == 0
                assert "Traceback" not in server.output()
        finally:
            database.close()
