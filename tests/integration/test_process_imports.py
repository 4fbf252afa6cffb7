"""What each process of ``opsbot serve`` loads.

By default ``opsbot serve`` is one process holding both the HTTP front and the core, so it
loads what the core needs (the executor check below is its core). In the multi-process model
(``OPSBOT_EXECUTORS`` > 0) an HTTP worker that imported the Kubernetes client or boto3 would pay
their memory and import time in every worker for nothing (only executors call the clusters);
a process that imported the fakes would be running test code in production. Each check runs in
a fresh interpreter, built exactly the way uvicorn's worker (``create_app``) or the executor
builds itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("kubernetes", "boto3", "botocore", "fakes", "moto")

WORKER = """
import asyncio, hashlib, hmac, json, sys, time
from urllib.parse import urlencode
from bot.serve.asgi import create_app

serving = create_app().state.serving
body = urlencode({"command": "/ops", "text": "deploy checkout 1.4.2 to production", "user_id": "U0ALICE",
                  "user_name": "alice", "channel_id": "C0OPS", "team_id": "T0", "response_url": "https://hooks.example/1"}).encode()
stamp = str(int(time.time()))
signature = "v0=" + hmac.new(b"secret", b"v0:" + stamp.encode() + b":" + body, hashlib.sha256).hexdigest()
headers = {"x-slack-request-timestamp": stamp, "x-slack-signature": signature, "content-type": "application/x-www-form-urlencoded"}
answer = asyncio.run(serving.slack.answer(body, headers, "test"))
print(json.dumps({"status": answer.status, "body": answer.body.decode(), "modules": sorted(sys.modules)}))
"""

EXECUTOR = """
import json, sys
from bot.messages import Message
from bot.serve.executor import run_executor
from bot.serve.wiring import build_core

class Silent:
    def post(self, channel, message, *, thread=None): return None
    def update(self, ref, message): return None
    def upload(self, channel, title, content, *, thread=None): return None

core = build_core(__import__("bot.settings", fromlist=["Settings"]).Settings(), notifier=Silent())
core.close()
print(json.dumps({"modules": sorted(sys.modules)}))
"""


def run_python(code: str, tmp_path: Path, **extra: str) -> dict[str, object]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OPSBOT_", "SLACK_"))}
    env.update(
        SLACK_BOT_TOKEN="xoxb-test",
        SLACK_SIGNING_SECRET="secret",
        SLACK_API_URL="http://127.0.0.1:9/api/",
        OPSBOT_CONFIG=str(REPO / "opsbot.example.yaml"),
        OPSBOT_RUNBOOKS_DIR=str(REPO / "runbooks"),
        OPSBOT_DATABASE_URL=f"sqlite:///{tmp_path / 'opsbot.db'}",
        OPSBOT_SCHEDULER="false",
        **extra,
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    answer: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


def loaded(modules: object, roots: tuple[str, ...]) -> list[str]:
    assert isinstance(modules, list)
    return [name for name in modules if str(name).split(".", 1)[0] in roots]


def test_an_http_worker_acks_a_deploy_without_loading_any_cloud_client_or_fake(tmp_path: Path) -> None:
    answer = run_python(WORKER, tmp_path, OPSBOT_EXECUTOR_SOCKET=str(tmp_path / "no-executor.sock"))

    assert answer["status"] == 200, answer
    assert "restarting" in str(answer["body"]), "with no executor listening the ack says so"
    assert loaded(answer["modules"], HEAVY) == []


def test_the_executor_loads_the_cloud_clients_it_needs_but_never_the_fakes(tmp_path: Path) -> None:
    answer = run_python(EXECUTOR, tmp_path)

    assert loaded(answer["modules"], ("fakes", "moto")) == []
    assert loaded(answer["modules"], ("bot",)), "the core was really built"
