"""Load with nothing lost: a mixed stream of signed commands and clicks against `opsbot serve`.

Run: .venv/bin/python benchmarks/load.py [--seconds 60] [--rate 200] [--postgres URL]

Starts a fake Slack Web API, a fake Kubernetes API server seeded with the example services,
and `opsbot serve --workers 2` on PostgreSQL (a fresh schema), then sends `--rate` requests/s
for `--seconds`: 40 % `help`, 30 % `status`, 20 % production `deploy` requests (they need an
approval) and 10 % Approve clicks by on-call on messages the bot posted. Afterwards it checks,
and prints: HTTP errors (non-200), ack latency percentiles, that every runbook command has its
`command_received` audit event and every click its approval event, that no request is left
`running`, and that the audit chain verifies. Not a test: it measures and reports.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import urlencode

import httpx
import psycopg
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.ack import SECRET, TOKEN, free_port, stop, wait_ready  # noqa: E402
from tests.fakes.kubernetes import FakeKubernetesServer  # noqa: E402
from tests.fakes.slack_api import FakeSlackApi  # noqa: E402
from tests.integration.slack_support import click_payload, form_payload, signed_headers  # noqa: E402

CHANNEL = "C0OPS"
REQUESTERS = ["U0ALICE", "U0DAVE"]
APPROVERS = ["U0BOB", "U0CAROL"]
USERS = {"U0ALICE": "alice", "U0BOB": "bob", "U0CAROL": "carol", "U0DAVE": "dave"}


def seeded_kubernetes(workdir: Path) -> tuple[FakeKubernetesServer, Path]:
    config = yaml.safe_load((REPO / "opsbot.example.yaml").read_text())
    server = FakeKubernetesServer(tick_seconds=0.1, seconds_per_tick=10.0).start()
    contexts = set()
    for service in config["services"].values():
        for env in service["environments"].values():
            target = env.get("kubernetes")
            if target:
                contexts.add(target["context"])
                server.add_deployment(
                    cluster=target["context"], namespace=target["namespace"], name=target["deployment"],
                    image=f"registry.example.com/{target['namespace']}/{target['deployment']}:1.0.0", replicas=2,
                    container=target.get("container"), progress_deadline_seconds=60,
                )  # fmt: skip
    kubeconfig = server.write_kubeconfig(workdir / "kubeconfig", contexts=sorted(contexts))
    config["kubernetes"]["kubeconfig"] = str(kubeconfig)
    config_path = workdir / "opsbot.yaml"
    config_path.write_text(yaml.safe_dump(config))
    return server, config_path


def command_body(slack: FakeSlackApi, user: str, text: str) -> bytes:
    return urlencode(
        {
            "token": "x",
            "team_id": "T0FAKE",
            "team_domain": "fake",
            "channel_id": CHANNEL,
            "channel_name": "ops",
            "user_id": user,
            "user_name": USERS[user],
            "command": "/ops",
            "text": text,
            "api_app_id": "A0FAKE",
            "response_url": slack.response_url(CHANNEL, user),
            "trigger_id": uuid.uuid4().hex,
        }
    ).encode()


class Load:
    """Sends the mix at a fixed rate and records what came back."""

    def __init__(self, slack: FakeSlackApi, base_url: str) -> None:
        self.slack = slack
        self.base_url = base_url
        self.sent: Counter[str] = Counter()
        self.status: Counter[int] = Counter()
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self.version = 0

    def next_body(self) -> tuple[str, bytes]:
        roll = random.random()
        if roll < 0.4:
            return "help", command_body(self.slack, random.choice(REQUESTERS), "help")
        if roll < 0.7:
            service = random.choice(["checkout", "payments", "search"])
            return "status", command_body(self.slack, random.choice(REQUESTERS), f"status {service} in production")
        if roll < 0.9:
            self.version += 1
            service = random.choice(["checkout", "payments"])
            text = f"deploy {service} 2.0.{self.version} to production"
            return "deploy", command_body(self.slack, random.choice(REQUESTERS), text)
        pending = [m for m in self.slack.messages(CHANNEL) if m.blocks and "waiting for approval" in m.text]
        if not pending:
            return "help", command_body(self.slack, random.choice(REQUESTERS), "help")
        message = random.choice(pending[-20:])
        return "click", form_payload(click_payload(self.slack, random.choice(APPROVERS), CHANNEL, message, "opsbot_approve"))

    async def send(self, client: httpx.AsyncClient, kind: str, body: bytes) -> None:
        headers = signed_headers(SECRET, body)
        started = time.perf_counter()
        try:
            response = await client.post("/slack/events", content=body, headers=headers)
        except httpx.HTTPError as error:
            self.failures.append(f"{kind}: {type(error).__name__}")
            return
        self.latencies.append((time.perf_counter() - started) * 1000)
        self.status[response.status_code] += 1
        self.sent[kind] += 1

    async def run(self, seconds: int, rate: int) -> None:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=30) as client:
            tasks = []
            started = time.perf_counter()
            for index in range(seconds * rate):
                delay = started + index / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                kind, body = await asyncio.to_thread(self.next_body) if index % rate == 0 else self.next_body()
                tasks.append(asyncio.create_task(self.send(client, kind, body)))
            await asyncio.gather(*tasks)


def audit_counts(database_url: str, schema: str) -> tuple[Counter[str], Counter[str]]:
    with psycopg.connect(database_url, options=f"-csearch_path={schema}") as connection:
        events = Counter({event: count for event, count in connection.execute("SELECT event, count(*) FROM audit_events GROUP BY event")})
        states = Counter({state: count for state, count in connection.execute("SELECT state, count(*) FROM requests GROUP BY state")})
    return events, states


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    random.seed(7)
    schema = f"load_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.postgres, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    database_url = args.postgres.replace("postgresql://", "postgresql+psycopg://", 1) + f"?options=-csearch_path%3D{schema}"
    try:
        with (
            tempfile.TemporaryDirectory() as directory,
            FakeSlackApi(token=TOKEN, users=USERS, channels={CHANNEL: "ops", "C0INCIDENT": "incidents"}) as slack,
        ):
            workdir = Path(directory)
            kube, config_path = seeded_kubernetes(workdir)
            port = free_port()
            env = {
                **os.environ,
                "SLACK_BOT_TOKEN": TOKEN,
                "SLACK_SIGNING_SECRET": SECRET,
                "SLACK_API_URL": slack.api_url,
                "OPSBOT_CONFIG": str(config_path),
                "OPSBOT_RUNBOOKS_DIR": str(REPO / "runbooks"),
                "OPSBOT_DATABASE_URL": database_url,
                "OPSBOT_SCHEDULER": "0",
                "OPSBOT_LOG_LEVEL": "WARNING",
                "PROMETHEUS_MULTIPROC_DIR": str(workdir),
            }
            subprocess.run([sys.executable, "-m", "bot.cli", "db", "upgrade"], env=env, check=True, capture_output=True, cwd=REPO)
            server = subprocess.Popen(
                [sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
                env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=open(workdir / "opsbot.log", "wb"),  # noqa: SIM115
            )  # fmt: skip
            try:
                wait_ready(f"http://127.0.0.1:{port}/healthz")
                load = Load(slack, f"http://127.0.0.1:{port}")
                started = time.perf_counter()
                asyncio.run(load.run(args.seconds, args.rate))
                elapsed = time.perf_counter() - started
                report(load, elapsed, args, database_url, schema, env, workdir)
            finally:
                stop(server)
                kube.stop()
    finally:
        with psycopg.connect(args.postgres, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA "{schema}" CASCADE')


def report(
    load: Load, elapsed: float, args: argparse.Namespace, database_url: str, schema: str, env: dict[str, str], workdir: Path
) -> None:
    total = sum(load.sent.values())
    non_200 = sum(count for status, count in load.status.items() if status != 200) + len(load.failures)
    latencies = sorted(load.latencies)
    print(f"load: {total:,} requests in {elapsed:.1f}s ({total / elapsed:,.0f}/s; target {args.rate}/s) mix {dict(load.sent)}")
    print(f"load: errors (non-200 or no answer): {non_200}  statuses {dict(load.status)}")
    p50, p99 = statistics.median(latencies), latencies[int(len(latencies) * 0.99) - 1]
    print(f"load: ack latency p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {latencies[-1]:.1f} ms")
    deadline = time.monotonic() + 300
    while True:  # let the post-ack work (plans, rollouts, Slack posts) drain
        events, states = audit_counts(args.postgres, schema)
        if states.get("running", 0) + states.get("approved", 0) == 0 or time.monotonic() > deadline:
            break
        time.sleep(2)
    runbook_commands = load.sent["status"] + load.sent["deploy"]
    received = events["command_received"]
    click_events = events["approval_given"] + events["approval_refused"]
    print(f"load: runbook commands sent {runbook_commands:,}, command_received audit events {received:,}")
    print(f"load: approval clicks sent {load.sent['click']:,}, approval_given + approval_refused events {click_events:,}")
    print(f"load: request states {dict(states)}")
    verify = subprocess.run(
        [sys.executable, "-m", "bot.cli", "audit", "verify"], env=env, capture_output=True, text=True, cwd=REPO, check=False
    )
    print(f"load: audit verify: {(verify.stdout or verify.stderr).strip()}")
    log = (workdir / "opsbot.log").read_text(errors="replace")
    errors = sum(1 for line in log.splitlines() if '"level": "error"' in line)
    print(f"load: error lines in the server log: {errors}")


if __name__ == "__main__":
    main()
