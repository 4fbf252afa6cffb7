"""Load with nothing lost: a mixed stream of signed commands and clicks against `opsbot serve`.

Run: .venv/bin/python benchmarks/load.py [--seconds 60] [--rate 200] [--postgres URL]

Starts the fakes (benchmarks/fake_services.py, its own process), and `opsbot serve` in its
multi-process form (2 HTTP workers, 2 executors; `--workers`/`--executors`) on PostgreSQL (a
fresh schema), then sends `--rate` requests/s for `--seconds`: 40 % `help`,
30 % `status`, 20 % production `deploy` requests (they need an approval) and 10 % Approve clicks
by on-call on pending requests. Afterwards it checks and prints: HTTP errors (non-200 or no
answer), ack latency percentiles, that every runbook command has its `command_received` audit
event and every click its approval event, that no request is left `running`, and that the
audit chain verifies; and who used the two cores (CPU seconds of opsbot, the fakes and the
generator, from /proc: benchmarks/process_cpu.py) and when the commands' and clicks' post-ack
work ended (the last audit event they write, against the last answer). Not a test: it measures
and reports.
"""

from __future__ import annotations

import argparse
import asyncio
import json
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
from typing import Any
from urllib.parse import urlencode

import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.ack import free_port, stop, wait_ready  # noqa: E402
from benchmarks.fake_services import DEFAULT_POSTGRES, SECRET, USERS, opsbot_pod, postgres_schema  # noqa: E402
from benchmarks.process_cpu import CpuMeter  # noqa: E402
from tests.integration.slack_support import block_actions_payload, form_payload, signed_headers  # noqa: E402

CHANNEL = "C0OPS"
REQUESTERS = ["U0ALICE", "U0DAVE"]
APPROVERS = ["U0BOB", "U0CAROL"]
IN_FLIGHT = 64
COMMAND_WORK_EVENTS = (
    "command_received", "command_rejected", "denied", "approval_requested", "answered",
    "approval_given", "approval_refused", "approved", "started",
)  # fmt: skip
"""What the post-ack work of commands and clicks writes; a run's later steps wait on the cluster, not on opsbot."""
"""Connections sending at once: at 200/s that leaves room for acks up to 300 ms before requests wait to leave."""


def command_body(user: str, text: str) -> bytes:
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
            "trigger_id": uuid.uuid4().hex,
        }
    ).encode()


def click_body(user: str, request_id: int, params_hash: str, plan_hash: str, ts: str) -> bytes:
    value = f"{request_id}:{params_hash[:16]}:{plan_hash[:16]}"
    # A unique action_ts, as Slack sends: otherwise two clicks in one second are byte-identical (a replay).
    action_ts = f"{time.time():.6f}{random.randrange(1000):03d}"
    action = {"type": "button", "action_id": "opsbot_approve", "value": value, "block_id": f"actions-{request_id}", "action_ts": action_ts}
    payload: dict[str, Any] = block_actions_payload(user, CHANNEL, actions=[action], message={"type": "message", "ts": ts, "text": ""})
    return form_payload(payload)


class Load:
    """Sends the mix at a fixed rate and records what came back."""

    def __init__(self, host: str, port: int, postgres: str, schema: str) -> None:
        self.host, self.port = host, port
        self.sent: Counter[str] = Counter()
        self.status: Counter[int] = Counter()
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self.busy: Counter[str] = Counter()
        self.version = 0
        self.last_answer_at = 0.0
        self.pending: list[tuple[int, str, str, str]] = []
        self.database = psycopg.connect(postgres, options=f"-csearch_path={schema}", autocommit=True)

    def refresh_pending(self) -> None:
        rows = self.database.execute(
            "SELECT id, params_hash, plan_hash, message_ref FROM requests "
            "WHERE state = 'pending_approval' AND message_ref IS NOT NULL ORDER BY id DESC LIMIT 20"
        ).fetchall()
        self.pending = [(row[0], row[1], row[2], json.loads(row[3])["ts"] if isinstance(row[3], str) else row[3]["ts"]) for row in rows]

    def next_body(self) -> tuple[str, bytes]:
        roll = random.random()
        if roll < 0.4:
            return "help", command_body(random.choice(REQUESTERS), "help")
        if roll < 0.7:
            service = random.choice(["checkout", "payments", "search"])
            return "status", command_body(random.choice(REQUESTERS), f"status {service} in production")
        if roll < 0.9 or not self.pending:
            self.version += 1
            service = random.choice(["checkout", "payments"])
            return "deploy", command_body(random.choice(REQUESTERS), f"deploy {service} 2.0.{self.version} to production")
        request_id, params_hash, plan_hash, ts = random.choice(self.pending)
        return "click", click_body(random.choice(APPROVERS), request_id, params_hash, plan_hash, ts)

    async def send(self, connection: KeepAliveConnection, due: float, kind: str, body: bytes) -> None:
        """One request; its latency counts from when it was due, so a generator that falls behind shows."""
        headers = signed_headers(SECRET, body)  # signed when it leaves, as Slack does
        try:
            status, text = await asyncio.wait_for(connection.post("/slack/events", body, headers), timeout=30)
        except (OSError, ValueError, asyncio.IncompleteReadError, TimeoutError) as error:
            connection.reset()
            self.failures.append(f"{kind}: {type(error).__name__}")
            return
        self.latencies.append((time.perf_counter() - due) * 1000)
        self.last_answer_at = time.time()
        self.status[status] += 1
        self.sent[kind] += 1
        if b"busy" in text:
            self.busy[kind] += 1

    async def run(self, seconds: float, rate: int) -> None:
        """Open loop: requests are due at ``rate``/s whatever the answers; IN_FLIGHT connections send them."""
        due_requests: asyncio.Queue[tuple[float, str, bytes] | None] = asyncio.Queue()

        async def sender() -> None:
            connection = KeepAliveConnection(self.host, self.port)
            while (item := await due_requests.get()) is not None:
                await self.send(connection, *item)
            connection.reset()

        senders = [asyncio.create_task(sender()) for _ in range(IN_FLIGHT)]
        started = time.perf_counter()
        for index in range(int(seconds * rate)):
            due = started + index / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if index % max(1, rate // 4) == 0:
                await asyncio.to_thread(self.refresh_pending)
            kind, body = self.next_body()
            due_requests.put_nowait((due, kind, body))
        for _ in senders:
            due_requests.put_nowait(None)
        await asyncio.gather(*senders)


class KeepAliveConnection:
    """A minimal HTTP/1.1 keep-alive client for POSTs (what Slack's deliveries look like on the wire).

    Not httpx: at 200 requests/s its connection pool and anyio locks cost the generator ~3.5 ms
    of CPU per request on this machine, enough for the generator, not opsbot, to set the pace.
    """

    def __init__(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        lines = [f"POST {path} HTTP/1.1", f"Host: {self._host}:{self._port}", "Content-Type: application/x-www-form-urlencoded"]
        lines += [f"Content-Length: {len(body)}", *(f"{name}: {value}" for name, value in headers.items()), "", ""]
        self._writer.write("\r\n".join(lines).encode("latin-1") + body)
        status_line = await self._reader.readline()
        if not status_line:
            raise ConnectionResetError("the server closed the connection")
        status, length = int(status_line.split()[1]), 0
        while (line := await self._reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        return status, await self._reader.readexactly(length)

    def reset(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2, help="HTTP worker processes (OPSBOT_WORKERS)")
    parser.add_argument("--executors", type=int, default=2, help="executor processes (OPSBOT_EXECUTORS; 0 = the core in each HTTP process)")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES)
    args = parser.parse_args()
    random.seed(7)
    with postgres_schema(args.postgres, "load") as (schema, database_url), tempfile.TemporaryDirectory() as directory:
        run(Path(directory), args, schema, database_url)


def run(workdir: Path, args: argparse.Namespace, schema: str, database_url: str) -> None:
    settings = {"PROMETHEUS_MULTIPROC_DIR": str(workdir), "OPSBOT_WORKERS": str(args.workers), "OPSBOT_EXECUTORS": str(args.executors)}
    with opsbot_pod(workdir, database_url, settings=settings) as pod:
        port = free_port()
        server = pod.serve(port)
        try:
            wait_ready(f"http://127.0.0.1:{port}/healthz")
            load = Load("127.0.0.1", port, args.postgres, schema)
            cpu = CpuMeter({"opsbot": server.pid, "fakes": pod.fakes.pid, "generator": os.getpid()}, alone=["generator"])
            started = time.perf_counter()
            cpu.start()
            asyncio.run(load.run(args.seconds, args.rate))
            report(load, time.perf_counter() - started, args, schema, pod.env, workdir, cpu)
        finally:
            stop(server)
            print(f"load: fakes answered {pod.fakes_counts()}")


def report(load: Load, elapsed: float, args: argparse.Namespace, schema: str, env: dict[str, str], workdir: Path, cpu: CpuMeter) -> None:
    result: dict[str, object] = {}
    total = sum(load.sent.values()) + len(load.failures)
    non_200 = sum(count for status, count in load.status.items() if status != 200) + len(load.failures)
    latencies = sorted(load.latencies)
    print(f"load: {total:,} requests in {elapsed:.1f}s ({total / elapsed:,.0f}/s; target {args.rate}/s) mix {dict(load.sent)}")
    print(f"load: errors (non-200 or no answer): {non_200}  statuses {dict(load.status)}  failures {Counter(load.failures).most_common(3)}")
    result.update(requests=total, seconds=round(elapsed, 1), rate=args.rate, errors=non_200)
    if latencies:
        p50, p99 = statistics.median(latencies), latencies[max(0, int(len(latencies) * 0.99) - 1)]
        print(f"load: ack latency p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {latencies[-1]:.1f} ms")
        result.update(ack_p50_ms=round(p50, 1), ack_p99_ms=round(p99, 1))
    drain_started = time.monotonic()
    events, states = drained_counts(load, schema)
    result["drained_seconds"] = round(time.monotonic() - drain_started)
    used = cpu.stop()  # the sending window and the drain, not the checks below
    wall = elapsed + time.monotonic() - drain_started
    print(
        f"load: CPU seconds over the {wall:.0f} s of sending and draining (2 cores = {2 * wall:.0f} CPU s): "
        + ", ".join(f"{name} {seconds:.1f}" for name, seconds in used.items())
    )
    handled = sum(load.sent.values())
    if handled:
        print(f"load: opsbot CPU per request of the mix {1000 * used['opsbot'] / handled:.2f} ms (sending and draining)")
        result["opsbot_cpu_ms_per_request"] = round(1000 * used["opsbot"] / handled, 2)
    result["cpu_seconds"] = used
    last_work, last_event = load.database.execute(
        "SELECT extract(epoch FROM max(at) FILTER (WHERE event = ANY(%s))), extract(epoch FROM max(at)) FROM audit_events",
        (list(COMMAND_WORK_EVENTS),),
    ).fetchone() or (None, None)
    if last_work is not None and load.last_answer_at:
        work_drained, all_drained = float(last_work) - load.last_answer_at, float(last_event) - load.last_answer_at
        print(
            f"load: the commands' and clicks' post-ack work ended {work_drained:.1f} s after the last answer; "
            f"the last audit event (runs waiting on the cluster's rollouts included) {all_drained:.1f} s after"
        )
        result.update(work_drained_seconds=round(work_drained, 1), last_event_seconds=round(all_drained, 1))
    runbook_commands = load.sent["status"] + load.sent["deploy"]
    shed = load.database.execute(
        "SELECT count(*) FROM audit_events WHERE event = 'command_rejected' AND outcome = 'busy' "
        'AND details NOT LIKE \'%"command":"help"%\''
    ).fetchone()
    print(
        f"load: runbook commands sent {runbook_commands:,}: command_received audit events {events['command_received']:,}, "
        f"refused as busy (audited) {shed[0] if shed else 0:,}"
    )
    clicks = events["approval_given"] + events["approval_refused"]
    print(f"load: approval clicks sent {load.sent['click']:,}, approval_given + approval_refused events {clicks:,}")
    print(f"load: request states {dict(states)}")
    reasons = load.database.execute(
        "SELECT left(regexp_replace(result, '#[0-9]+|[0-9]+ (s|min) ago', '…', 'g'), 70), count(*) FROM requests "
        "WHERE state = 'failed' GROUP BY 1 ORDER BY 2 DESC LIMIT 4"
    ).fetchall()
    print(f"load: why requests failed: {[(reason, count) for reason, count in reasons]}")
    verify = subprocess.run(
        [sys.executable, "-m", "bot.cli.main", "audit", "verify"], env=env, capture_output=True, text=True, cwd=REPO, check=False
    )
    print(f"load: audit verify: {(verify.stdout or verify.stderr).strip()}")
    print(f"load: answered 'busy, try again' in the ack: {dict(load.busy) or 0}")
    result.update(busy_in_ack=sum(load.busy.values()), shed_after_ack=shed[0] if shed else 0, states=dict(states))
    log = (workdir / "opsbot.log").read_text(errors="replace")
    warnings = Counter(json.loads(line)["event"][:60] for line in log.splitlines() if '"level": "warning"' in line)
    print(f"load: warnings in the server log: {warnings.most_common(5)}")
    errors = Counter(json.loads(line)["event"][:100] for line in log.splitlines() if '"level": "error"' in line)
    print(f"load: error lines in the server log: {sum(errors.values())} {errors.most_common(4)}")
    result["server_error_lines"] = sum(errors.values())
    print("RESULT " + json.dumps(result))


def drained_counts(load: Load, schema: str) -> tuple[Counter[str], Counter[str]]:
    """Audit and request counts once post-ack work (plans, rollouts, Slack posts) has drained."""
    deadline = time.monotonic() + 600
    previous, quiet_since = -1, time.monotonic()
    while True:
        events: Counter[str] = Counter(dict(load.database.execute("SELECT event, count(*) FROM audit_events GROUP BY event").fetchall()))
        states: Counter[str] = Counter(dict(load.database.execute("SELECT state, count(*) FROM requests GROUP BY state").fetchall()))
        total = sum(events.values())
        if total != previous:
            previous, quiet_since = total, time.monotonic()
        settled = states.get("running", 0) + states.get("approved", 0) == 0 and time.monotonic() - quiet_since > 5
        if settled or time.monotonic() > deadline:
            print(f"load: post-ack work drained {time.monotonic() - (deadline - 600):.0f}s after the last request")
            return events, states
        time.sleep(1)


if __name__ == "__main__":
    main()
