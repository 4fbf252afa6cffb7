"""Click to rollout: from an Approve click's HTTP answer to the real PATCH at the Kubernetes API, and to the message's update.

Run: .venv/bin/python benchmarks/click_latency.py [--approvals 200] [--parallel 1,10] [--postgres URL]
     [--settings OPSBOT_EXECUTORS=2 OPSBOT_WORKERS=2]

Starts the fakes (benchmarks/fake_services.py, their own niced process) with the example catalog
plus ten production services ``bench00``…``bench09`` (a Deployment each in the fake cluster), and
`opsbot serve` (default settings unless ``--settings``) on PostgreSQL, a fresh schema. For each
approval: a signed ``/ops deploy benchNN <version> to production`` by a developer, wait until it
is pending approval with its message posted, then a signed Approve click by on-call; then wait
until the run has ended before that service's next deploy (a deploy finds the previous one's
lock otherwise). ``--parallel 10`` runs ten services side by side, their clicks released together.

Measured per click, on the wall clock (the fakes stamp each request as it arrives, see
``received_at`` in fakes/kubernetes/recording.py and fakes/slack/records.py):

- **PATCH**: the click's HTTP answer → the real (not dry-run) PATCH carrying that version;
- **update**: the click's HTTP answer → the first ``chat.update`` of that request's message.

Prints min / p50 / p99 / max per mode and a last line ``RESULT {json}``. Not a test.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.ack import free_port, stop  # noqa: E402
from benchmarks.fake_services import DEFAULT_POSTGRES, SECRET, opsbot_pod, postgres_schema  # noqa: E402
from benchmarks.footprint import wait_until_ready  # noqa: E402
from benchmarks.load import click_body, command_body  # noqa: E402
from tests.integration.slack_support import signed_headers  # noqa: E402

SERVICES = [f"bench{index:02d}" for index in range(10)]
REQUESTER, APPROVER = "U0ALICE", "U0BOB"
ENDED = ("succeeded", "failed", "rolled_back", "not_started", "interrupted", "cancelled", "rejected", "expired")


@dataclass
class Click:
    service: str
    version: str
    request_id: int
    message_ts: str
    sent_at: float
    answered_at: float
    status: int
    state: str = ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--approvals", type=int, default=200, help="approvals per mode")
    parser.add_argument("--parallel", default="1,10", help="approvals in flight at once, one mode per value")
    parser.add_argument("--postgres", default=os.environ.get("OPSBOT_TEST_POSTGRES_URL", DEFAULT_POSTGRES))
    parser.add_argument("--settings", nargs="*", default=[], metavar="NAME=VALUE", help="besides the defaults")
    parser.add_argument("--trace", action="store_true", help="print what the fakes received between the first click and its PATCH")
    args = parser.parse_args()
    settings = dict(setting.split("=", 1) for setting in args.settings)
    with (
        postgres_schema(args.postgres, "clicks") as (schema, url),
        tempfile.TemporaryDirectory(prefix="opsbot-clicks-") as directory,
        opsbot_pod(Path(directory), url, catalog=bench_catalog(), settings=settings) as pod,
    ):
        port = free_port()
        server = pod.serve(port)
        try:
            wait_until_ready(f"http://127.0.0.1:{port}/readyz")
            database = psycopg.connect(args.postgres, options=f"-csearch_path={schema}", autocommit=True)
            modes = {int(level): run_mode(port, database, int(level), args.approvals) for level in args.parallel.split(",")}
            timings = pod.timings()
            if args.trace:
                print_trace(pod.trace(), next(iter(modes.values()))[0])
        finally:
            stop(server)
    result: dict[str, Any] = {"settings": args.settings, "load_average": round(os.getloadavg()[0], 1)}
    print(f"click latency: {args.approvals} approvals per mode, load average {result['load_average']} ({os.cpu_count()} cores)")
    for level, clicks in modes.items():
        result[f"parallel_{level}"] = report(level, clicks, timings)
    print("RESULT " + json.dumps(result))


def bench_catalog() -> dict[str, Any]:
    """The example catalog plus ten production Kubernetes services under the production deploy rule."""
    catalog: dict[str, Any] = yaml.safe_load((REPO / "opsbot.example.yaml").read_text())
    for service in SERVICES:
        target = {"context": "demo-production", "namespace": "bench", "deployment": service, "container": "app"}
        catalog["services"][service] = {"description": "click benchmark", "environments": {"production": {"kubernetes": target}}}
    for rule in catalog["policy"]["rules"]:
        if "deploy" in rule.get("runbooks", []) and rule.get("services"):
            rule["services"] = [*rule["services"], *SERVICES]
    return catalog


def run_mode(port: int, database: psycopg.Connection[Any], parallel: int, approvals: int) -> list[Click]:
    """``approvals`` clicks, ``parallel`` services at once; each service deploys again only after its previous run ended."""
    clicks: list[Click] = []
    lock = threading.Lock()
    release = threading.Barrier(parallel)
    rounds = max(1, approvals // parallel)

    def service_loop(service: str) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        reader = psycopg.connect(database.info.dsn, autocommit=True)
        for _ in range(rounds):
            version = f"9.{uuid.uuid4().int % 10**8}.0"
            request_id, params_hash, plan_hash, ts = pending_request(connection, reader, service, version)
            release.wait()  # the clicks of one round leave together
            click = approve(connection, service, version, request_id, params_hash, plan_hash, ts)
            click.state = wait_for_end(reader, request_id)
            with lock:
                clicks.append(click)
        connection.close()
        reader.close()

    failures: list[BaseException] = []

    def guarded(service: str) -> None:
        try:
            service_loop(service)
        except BaseException as error:
            failures.append(error)
            release.abort()  # the others stop waiting for this one
            raise

    threads = [threading.Thread(target=guarded, args=(service,)) for service in SERVICES[:parallel]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"{len(failures)} of {parallel} clients failed; first: {failures[0]!r}")
    return clicks


def post(connection: http.client.HTTPConnection, body: bytes) -> tuple[int, bytes]:
    """One signed POST on a keep-alive connection, sent again on a fresh one if the server had closed it while idle."""
    headers = {"Content-Type": "application/x-www-form-urlencoded", **signed_headers(SECRET, body)}
    try:
        connection.request("POST", "/slack/events", body=body, headers=headers)
        answer = connection.getresponse()
    except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
        connection.close()
        connection.request("POST", "/slack/events", body=body, headers=headers)
        answer = connection.getresponse()
    return answer.status, answer.read()


def pending_request(
    connection: http.client.HTTPConnection, reader: psycopg.Connection[Any], service: str, version: str
) -> tuple[int, str, str, str]:
    status, text = post(connection, command_body(REQUESTER, f"deploy {service} {version} to production"))
    if status != 200:
        raise RuntimeError(f"deploy {service} {version}: HTTP {status} {text[:200]!r}")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        row = reader.execute(
            "SELECT id, params_hash, plan_hash, message_ref, state FROM requests WHERE service = %s AND params::text LIKE %s "
            "ORDER BY id DESC LIMIT 1",
            (service, f"%{version}%"),
        ).fetchone()
        if row is not None and row[4] != "pending_approval":
            raise RuntimeError(f"deploy {service} {version} did not wait for an approval: {row[4]}")
        if row is not None and row[3] is not None:
            reference = json.loads(row[3]) if isinstance(row[3], str) else row[3]
            return int(row[0]), str(row[1]), str(row[2]), str(reference["ts"])
        time.sleep(0.01)
    raise RuntimeError(f"deploy {service} {version} was not pending with a message within 60 s")


def approve(
    connection: http.client.HTTPConnection, service: str, version: str, request_id: int, params_hash: str, plan_hash: str, ts: str
) -> Click:
    body = click_body(APPROVER, request_id, params_hash, plan_hash, ts)
    sent_at = time.time()
    status, _text = post(connection, body)
    return Click(service, version, request_id, ts, sent_at, time.time(), status)


def wait_for_end(reader: psycopg.Connection[Any], request_id: int, timeout: float = 120.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = reader.execute("SELECT state FROM requests WHERE id = %s", (request_id,)).fetchone()
        if row is not None and row[0] in ENDED:
            return str(row[0])
        time.sleep(0.02)
    raise RuntimeError(f"request #{request_id} did not end within {timeout:.0f} s")


def report(parallel: int, clicks: list[Click], timings: dict[str, list[list[Any]]]) -> dict[str, Any]:
    patches: dict[str, float | None] = {click.version: None for click in clicks}
    for received_at, _path, body in timings["patches"]:
        for version, seen in patches.items():
            if seen is None and f":{version}" in body:
                patches[version] = received_at
    updates: dict[str, list[float]] = {}
    for received_at, ts in timings["updates"]:
        updates.setdefault(ts, []).append(received_at)
    to_patch = [(at - click.answered_at) * 1000 for click in clicks if (at := patches[click.version]) is not None]
    to_update = [
        (min(at for at in updates[click.message_ts] if at >= click.sent_at) - click.answered_at) * 1000
        for click in clicks
        if any(at >= click.sent_at for at in updates.get(click.message_ts, []))
    ]
    answers = [(click.answered_at - click.sent_at) * 1000 for click in clicks]
    states: dict[str, int] = {}
    for click in clicks:
        states[click.state] = states.get(click.state, 0) + 1
    figures: dict[str, Any] = {"clicks": len(clicks), "states": states, "ack_ms": summary(answers), "patch_ms": summary(to_patch)}
    figures["update_ms"] = summary(to_update)
    print(f"  {parallel} at a time: {len(clicks)} clicks, runs ended {states}")
    for name in ("ack_ms", "patch_ms", "update_ms"):
        figure = figures[name]
        print(
            f"    {name.removesuffix('_ms'):<7} n {figure['n']:<4} min {figure['min']:7.1f}  p50 {figure['p50']:7.1f}  "
            f"p99 {figure['p99']:7.1f}  max {figure['max']:7.1f} ms"
        )
    return figures


def print_trace(trace: list[list[Any]], click: Click) -> None:
    """What reached the fakes from the click's send until its run ended, in ms after the click's answer: where the time goes."""
    print(f"trace of request #{click.request_id} ({click.service}), ms after the click's HTTP answer:")
    for at, what in trace:
        if at >= click.sent_at and "PATCH" in what and click.service in what and "dryRun" not in what:
            print(f"  {(at - click.answered_at) * 1000:8.1f}  {what}")
            return
        if at >= click.sent_at:
            print(f"  {(at - click.answered_at) * 1000:8.1f}  {what}")


def summary(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {"n": 0, "min": 0.0, "p50": 0.0, "p99": 0.0, "max": 0.0}
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {
        "n": len(ordered),
        "min": round(ordered[0], 1),
        "p50": round(statistics.median(ordered), 1),
        "p99": round(p99, 1),
        "max": round(ordered[-1], 1),
    }


if __name__ == "__main__":
    main()
