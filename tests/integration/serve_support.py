"""``opsbot serve`` as real subprocesses, for the replica, crash-recovery and log tests.

Each server runs in its own session (process group), so a test can ``kill -9`` a whole "pod"
(uvicorn's supervisor and its workers) the way an OOM kill or a lost node would, and
``opsbot_serve`` always kills whatever it started, whatever the test did. Output goes to
files, never to a pipe nobody reads (a full pipe would block the server).

Usage::

    env = serve_environment(slack, database_url=url, config_path=config, instance_id="replica-a")
    with opsbot_serve("a", env, tmp_path) as a:
        a.command(slack, "U0DEV", "deploy checkout 1.4.2 to production")
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import psycopg
from sqlalchemy import select

from bot.messages import ButtonAction
from bot.store import locks as lock_store
from bot.store import requests as request_store
from bot.store.database import Database
from bot.store.models import AuditEventRow, RequestRow, TargetLockRow, utcnow
from bot.store.states import RequestState
from fakes.kubernetes import FakeKubernetesServer
from fakes.slack import FakeSlackApi, Message
from tests.conftest import POSTGRES_ADMIN_URL, REPO, RUNBOOKS
from tests.integration.slack_support import SIGNING_SECRET, click_payload, command_form, form_payload, signed_headers, wait_until

CHANNEL = "C0OPS"
INCIDENT_CHANNEL = "C0INCIDENT"
DEVELOPER, ONCALL_ONE, ONCALL_TWO = "U0DEV", "U0ONE", "U0TWO"
USERS = {DEVELOPER: "dev", ONCALL_ONE: "oncall1", ONCALL_TWO: "oncall2"}
CHANNELS = {CHANNEL: "ops", INCIDENT_CHANNEL: "incident"}
IMAGE = "registry.example.com/shop/checkout"
CLUSTERS = ("staging", "production")
STARTUP_SECONDS = 60.0
_handed_out: set[int] = set()


# -- the world around the servers ---------------------------------------------------------------


def fake_slack(token: str = "xoxb-replicas-test") -> FakeSlackApi:
    return FakeSlackApi(token=token, users=USERS, channels=CHANNELS)


def fake_cluster(*, progress_deadline_seconds: int = 600) -> FakeKubernetesServer:
    """A started fake API server with ``shop/checkout`` (3 replicas of 1.4.1) in a staging and a production cluster.

    The controller ticks by itself (10 simulated seconds every 50 ms), as a real cluster would.
    """
    kube = FakeKubernetesServer(tick_seconds=0.05, seconds_per_tick=10.0).start()
    for cluster in CLUSTERS:
        kube.add_deployment(
            cluster=cluster, namespace="shop", name="checkout", image=f"{IMAGE}:1.4.1", replicas=3, container="checkout",
            progress_deadline_seconds=progress_deadline_seconds,
        )  # fmt: skip
    return kube


def write_config(directory: Path, kube: FakeKubernetesServer) -> Path:
    """opsbot.yaml for ``checkout``: staging is self-service, production needs one on-call approval."""
    kubeconfig = kube.write_kubeconfig(directory / "kubeconfig", contexts=list(CLUSTERS))
    config = {
        "users": USERS,
        "groups": {"developers": [DEVELOPER], "platform-oncall": [ONCALL_ONE, ONCALL_TWO]},
        "channels": {"incident": INCIDENT_CHANNEL},
        "kubernetes": {"kubeconfig": str(kubeconfig), "in_cluster": False, "request_timeout": "10s"},
        "services": {
            "checkout": {
                "default_env": "staging",
                "environments": {
                    cluster: {"kubernetes": {"context": cluster, "namespace": "shop", "deployment": "checkout", "container": "checkout"}}
                    for cluster in CLUSTERS
                },
            }
        },
        "policy": {
            "rules": [
                {"name": "status", "runbooks": ["status"], "envs": ["*"], "allow": {"users": ["*"]}},
                {"name": "locks", "runbooks": ["lock", "unlock"], "envs": ["*"], "allow": {"groups": ["developers", "platform-oncall"]}},
                {"name": "staging", "runbooks": ["*"], "envs": ["staging"], "allow": {"groups": ["developers", "platform-oncall"]}},
                {
                    "name": "production",
                    "runbooks": ["deploy", "rollback", "restart", "scale"],
                    "envs": ["production"],
                    "allow": {"groups": ["developers", "platform-oncall"]},
                    "approvals": {"count": 1, "approvers": ["platform-oncall"], "expires_in": "30m"},
                },
            ]
        },
    }
    path = directory / "opsbot.yaml"
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    return path


@contextlib.contextmanager
def postgres_schema() -> Iterator[str]:
    """Like the ``postgres_url`` fixture, for fixtures wider than one test."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    base = POSTGRES_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://", 1)
    separator = "&" if "?" in base else "?"
    try:
        yield f"{base}{separator}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA "{schema}" CASCADE')


def serve_environment(
    slack: FakeSlackApi, *, database_url: str, config_path: Path, instance_id: str, metrics_dir: Path, **extra: str
) -> dict[str, str]:
    """The environment of one opsbot pod; nothing of the test runner's own SLACK_/OPSBOT_ variables leaks in."""
    inherited = {key: value for key, value in os.environ.items() if not key.upper().startswith(("SLACK_", "OPSBOT_", "PROMETHEUS_"))}
    return {
        **inherited,
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "OPSBOT_CONFIG": str(config_path),
        "OPSBOT_RUNBOOKS_DIR": str(RUNBOOKS),
        "OPSBOT_DATABASE_URL": database_url,
        "OPSBOT_INSTANCE_ID": instance_id,
        "OPSBOT_SCHEDULER": "false",
        "OPSBOT_LOG_FORMAT": "json",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        **extra,
    }


def free_port() -> int:
    """A port nobody listens on, never the same one twice in this test process."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def run_cli(env: Mapping[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``opsbot <args>`` in a subprocess with ``env``."""
    return subprocess.run(
        [sys.executable, "-m", "bot.cli.main", *args], env=dict(env), cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False
    )


# -- one server process -------------------------------------------------------------------------


@dataclass
class OpsbotProcess:
    """A running ``opsbot serve``: its port, its process group, its output, and a Slack that talks to it."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)

    def wait_ready(self, timeout: float = STARTUP_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"opsbot serve {self.name} exited with {self.process.returncode}:\n{self.output()}")
            with contextlib.suppress(httpx.TransportError):
                if self.http.get("/readyz", timeout=5).status_code == 200:
                    return
            time.sleep(0.05)
        raise AssertionError(f"opsbot serve {self.name} was not ready within {timeout} s:\n{self.output()}")

    def kill(self) -> None:
        """``kill -9`` the whole pod: supervisor and workers at once, no shutdown code runs."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self._kill_stragglers()

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, as Kubernetes sends it; killed if it does not exit within ``timeout``."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._kill_stragglers()
        return int(self.process.returncode)

    def close(self) -> None:
        self.http.close()
        self.kill()

    def output(self) -> str:
        return self.stdout() + self.stderr()

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    # -- what Slack sends ------------------------------------------------------------------------

    def post_signed(self, body: bytes, *, secret: str = SIGNING_SECRET, timestamp: int | None = None) -> httpx.Response:
        return self.http.post("/slack/events", content=body, headers=signed_headers(secret, body, timestamp=timestamp))

    def command(
        self, slack: FakeSlackApi, user_id: str, text: str, *, channel: str = CHANNEL, secret: str = SIGNING_SECRET
    ) -> httpx.Response:
        return self.post_signed(command_body(slack, user_id, text, channel=channel), secret=secret)

    def _kill_stragglers(self) -> None:
        """Workers whose supervisor died first (they share its process group)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)


@contextlib.contextmanager
def opsbot_serve(name: str, env: Mapping[str, str], log_dir: Path, *, workers: int = 1, wait: bool = True) -> Iterator[OpsbotProcess]:
    """Start ``opsbot serve`` on a free port; always killed (with its workers) when the block ends."""
    port = free_port()
    stdout_path, stderr_path = log_dir / f"{name}.stdout", log_dir / f"{name}.stderr"
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli.main", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
            env=dict(env),
            cwd=REPO,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,  # its own process group: kill -9 reaches every worker
        )
    server = OpsbotProcess(name, port, process, stdout_path, stderr_path)
    try:
        if wait:
            server.wait_ready()
        yield server
    finally:
        server.close()


# -- what Slack sends ----------------------------------------------------------------------------


def command_body(slack: FakeSlackApi, user_id: str, text: str, *, channel: str = CHANNEL) -> bytes:
    form = command_form(slack, user_id, channel, text)
    form["user_name"] = USERS.get(user_id, user_id)
    return urlencode(form).encode("utf-8")


def click_body(slack: FakeSlackApi, user_id: str, message: Message, action: ButtonAction, *, click: int) -> bytes:
    """A button press; ``click`` numbers presses, so two presses are two distinct deliveries (as in Slack)."""
    payload: dict[str, Any] = click_payload(slack, user_id, CHANNEL, message, action)
    payload["actions"][0]["action_ts"] = f"{1_700_000_000 + click}.000100"
    payload["user"]["username"] = payload["user"]["name"] = USERS.get(user_id, user_id)
    return form_payload(payload)


# -- what the database says ----------------------------------------------------------------------


class DatabaseView:
    """Read-only looks into the shared database, as an operator with ``opsbot show`` would have."""

    def __init__(self, url: str) -> None:
        self.database = Database(url)

    def close(self) -> None:
        self.database.dispose()

    def request(self, request_id: int) -> RequestRow:
        with self.database.reading() as session:
            row = request_store.get_request(session, request_id)
        assert row is not None, f"no request #{request_id}"
        return row

    def latest_request(self) -> RequestRow | None:
        with self.database.reading() as session:
            return session.scalars(select(RequestRow).order_by(RequestRow.id.desc())).first()

    def events(self, request_id: int) -> list[AuditEventRow]:
        with self.database.reading() as session:
            return list(session.scalars(select(AuditEventRow).where(AuditEventRow.request_id == request_id).order_by(AuditEventRow.seq)))

    def lock(self, service: str, env: str) -> TargetLockRow | None:
        with self.database.reading() as session:
            return lock_store.current(session, service=service, env=env, now=utcnow())

    def wait_for_request(self, *, after: int = 0, timeout: float = 30) -> RequestRow:
        """The first request with an id above ``after`` (created by a command sent just now)."""

        def created() -> RequestRow | None:
            row = self.latest_request()
            return row if row is not None and row.id > after else None

        return wait_until(created, timeout, what="the request to be created")

    def wait_for_state(self, request_id: int, *states: RequestState, timeout: float = 60) -> RequestRow:
        wanted = {str(state) for state in states}
        return wait_until(
            lambda: row if (row := self.request(request_id)).state in wanted else None,
            timeout,
            what=f"request #{request_id} to reach {sorted(wanted)}",
        )

    def wait_for_message_ref(self, request_id: int, timeout: float = 30) -> str:
        """The request message's ts, once opsbot stored it (a click before that could not redraw it)."""
        return str(wait_until(lambda: (self.request(request_id).message_ref or {}).get("ts"), timeout, what="the message ts to be stored"))
