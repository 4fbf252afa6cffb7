"""Footprint: memory of `opsbot serve` with default settings, per process and in total, at rest and after load.

Run: .venv/bin/python benchmarks/footprint.py [--load-seconds 30] [--rate 100] [--postgres URL]

Starts the fakes (benchmarks/fake_services.py, their own process) and `opsbot serve` with its
default process settings on PostgreSQL (a fresh schema), and reports:

- time from start to `/readyz` answering 200 (start-up);
- PSS and RSS of every process of the pod (from /proc/<pid>/smaps_rollup), by role: the
  supervisor, HTTP workers, executors, helpers (multiprocessing's resource tracker), at rest;
- the same after `--load-seconds` of the load benchmark's mix (benchmarks/load.py) at `--rate`,
  once the post-ack work has drained.

PSS (proportional set size) counts shared pages once across the processes that share them, so
the total is what the pod really costs; RSS double-counts shared pages. Not a test: it measures.
The last line is ``RESULT {json}`` for scripts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.ack import SECRET, free_port, stop  # noqa: E402
from benchmarks.load import Load, drained_counts  # noqa: E402

SETTLE_SECONDS = 5.0


@dataclass(frozen=True)
class ProcessMemory:
    pid: int
    role: str
    pss_kib: int
    rss_kib: int


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--load-seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--postgres", default=os.environ.get("OPSBOT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args()
    schema = f"footprint_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.postgres, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    try:
        with tempfile.TemporaryDirectory(prefix="opsbot-footprint-") as directory:
            base = args.postgres.replace("postgresql://", "postgresql+psycopg://", 1)
            url = f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"
            measure(Path(directory), args, schema, url)
    finally:
        with psycopg.connect(args.postgres, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA "{schema}" CASCADE')


def measure(workdir: Path, args: argparse.Namespace, schema: str, database_url: str) -> None:
    fakes = subprocess.Popen(
        [sys.executable, str(REPO / "benchmarks" / "fake_services.py"), str(workdir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert fakes.stdin is not None and fakes.stdout is not None
    endpoints = json.loads(fakes.stdout.readline())
    config = yaml.safe_load((REPO / "opsbot.example.yaml").read_text())
    config["kubernetes"]["kubeconfig"] = endpoints["kubeconfig"]
    (workdir / "opsbot.yaml").write_text(yaml.safe_dump(config))
    port = free_port()
    # Default process settings: nothing about workers, executors or pools is set here.
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith(("OPSBOT_", "SLACK_", "PROMETHEUS_"))},
        "SLACK_BOT_TOKEN": endpoints["token"],
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": endpoints["slack_api_url"],
        "OPSBOT_CONFIG": str(workdir / "opsbot.yaml"),
        "OPSBOT_RUNBOOKS_DIR": str(REPO / "runbooks"),
        "OPSBOT_DATABASE_URL": database_url,
        "OPSBOT_SCHEDULER": "0",
        "OPSBOT_LOG_LEVEL": "WARNING",
    }
    subprocess.run([sys.executable, "-m", "bot.cli.main", "db", "upgrade"], env=env, check=True, capture_output=True, cwd=REPO)
    started = time.perf_counter()
    with (workdir / "opsbot.log").open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "bot.cli.main", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
    try:
        wait_until_ready(f"http://127.0.0.1:{port}/readyz")
        ready_seconds = time.perf_counter() - started
        print(f"footprint: opsbot serve ready (/readyz 200) {ready_seconds:.2f} s after start")
        time.sleep(SETTLE_SECONDS)
        at_rest = pod_memory(server.pid)
        report("at rest", at_rest)
        after: list[ProcessMemory] = []
        if args.load_seconds > 0:
            load = Load("127.0.0.1", port, args.postgres, schema)
            asyncio.run(load.run(args.load_seconds, args.rate))
            drained_counts(load, schema)
            after = pod_memory(server.pid)
            report(f"after {args.load_seconds:.0f} s of the load mix at {args.rate}/s", after)
        print("RESULT " + json.dumps({"ready_seconds": round(ready_seconds, 2), "rest": summary(at_rest), "after_load": summary(after)}))
    finally:
        stop(server)
        fakes.stdin.close()
        fakes.wait(timeout=30)


def wait_until_ready(url: str, timeout: float = 120.0) -> float:
    began = time.perf_counter()
    while time.perf_counter() - began < timeout:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return time.perf_counter() - began
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} was not ready within {timeout:.0f} s")


def pod_memory(root: int) -> list[ProcessMemory]:
    """Every process of the tree under ``root``, with its role and its PSS/RSS."""
    executors = _pids_holding_socket_named("executor.sock")
    found: list[ProcessMemory] = []
    for pid in [root, *_descendants(root)]:
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        values = {match.group(1): int(match.group(2)) for match in re.finditer(r"^(\w+):\s+(\d+) kB", rollup, re.MULTILINE)}
        found.append(ProcessMemory(pid, _role(pid, root, command, executors), values.get("Pss", 0), values.get("Rss", 0)))
    return found


def report(when: str, processes: list[ProcessMemory]) -> None:
    print(f"footprint {when}:")
    for process in processes:
        print(f"  {process.role:<12} pid {process.pid:<7} PSS {process.pss_kib / 1024:6.1f} MiB  RSS {process.rss_kib / 1024:6.1f} MiB")
    total = summary(processes)
    print(f"  total: {total['processes']} processes, PSS {total['pss_mib']} MiB, RSS {total['rss_mib']} MiB")


def summary(processes: list[ProcessMemory]) -> dict[str, object]:
    if not processes:
        return {}
    by_role: dict[str, float] = {}
    for process in processes:
        by_role[process.role] = round(by_role.get(process.role, 0.0) + process.pss_kib / 1024, 1)
    return {
        "processes": len(processes),
        "pss_mib": round(sum(process.pss_kib for process in processes) / 1024, 1),
        "rss_mib": round(sum(process.rss_kib for process in processes) / 1024, 1),
        "pss_mib_by_role": by_role,
    }


def _descendants(pid: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children.extend(int(child) for child in (task / "children").read_text().split())
        except OSError:
            continue
    found: list[int] = []
    for child in children:
        found.append(child)
        found.extend(_descendants(child))
    return found


def _pids_holding_socket_named(suffix: str) -> set[int]:
    inodes = set()
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and fields[7].endswith(suffix):
            inodes.add(fields[6])
    holders: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            links = [os.readlink(fd) for fd in (entry / "fd").iterdir()]
        except OSError:
            continue
        if any(link.startswith("socket:[") and link[8:-1] in inodes for link in links):
            holders.add(int(entry.name))
    return holders


def _role(pid: int, root: int, command: str, executors: set[int]) -> str:
    if pid == root:
        return "supervisor"
    if "resource_tracker" in command:
        return "helper"
    if pid in executors:
        return "executor"
    if "spawn_main" in command or "multiprocessing" in command:
        return "http-worker"
    return "other"


if __name__ == "__main__":
    main()
