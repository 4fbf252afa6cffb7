"""`opsbot serve` with ``OPSBOT_EXECUTORS`` > 0 runs the core in executor processes beside its HTTP workers.

The HTTP workers only verify, parse, ack and hand jobs over a private Unix socket; if an
executor dies, the pod stops (non-zero) instead of acking work nobody would do. (The default,
one process doing everything, is tested in test_serve_single_process.py.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from fakes.slack import FakeSlackApi
from tests.integration.serve_support import fake_cluster, fake_slack, opsbot_serve, run_cli, serve_environment, write_config

REQUESTER = "U0ALICE"


def executor_pid(serve_pid: int) -> int:
    """The child of ``opsbot serve`` that runs ``multiprocessing``'s spawn bootstrap (the executor)."""
    children = subprocess.run(["pgrep", "-P", str(serve_pid)], capture_output=True, text=True, check=False).stdout.split()
    for child in children:
        command = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
        if b"spawn_main" in command:
            return int(child)
    raise AssertionError(f"no executor among the children of {serve_pid}: {children}")


def test_a_command_acked_by_a_worker_is_done_by_the_executor(tmp_path: Path, sqlite_url: str) -> None:
    with fake_slack() as slack, fake_cluster() as kube:
        env = serve_environment(
            slack,
            database_url=sqlite_url,
            config_path=write_config(tmp_path, kube),
            instance_id="pod-a",
            metrics_dir=tmp_path / "m",
            OPSBOT_EXECUTORS="1",
        )
        assert run_cli(env, "db", "upgrade").returncode == 0
        with opsbot_serve("pod-a", env, tmp_path, workers=2) as server:
            response = server.command(slack, REQUESTER, "help")
            assert response.status_code == 200 and "Working on" in response.text
            slack.wait_for(lambda: [e for e in slack.ephemerals(user=REQUESTER) if "Runbooks" in str(e.blocks) + e.text], timeout=30)
            assert executor_pid(server.process.pid) > 0


def test_the_pod_stops_when_the_executor_dies(tmp_path: Path, sqlite_url: str) -> None:
    slack: FakeSlackApi
    with fake_slack() as slack, fake_cluster() as kube:
        env = serve_environment(
            slack,
            database_url=sqlite_url,
            config_path=write_config(tmp_path, kube),
            instance_id="pod-b",
            metrics_dir=tmp_path / "m",
            OPSBOT_EXECUTORS="1",
        )
        assert run_cli(env, "db", "upgrade").returncode == 0
        with opsbot_serve("pod-b", env, tmp_path, workers=1) as server:
            os.kill(executor_pid(server.process.pid), signal.SIGKILL)
            deadline = time.monotonic() + 60
            while server.process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            assert server.process.returncode not in (None, 0)
            assert "the executor process exited" in server.output()
