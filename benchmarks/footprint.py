"""Footprint: memory of `opsbot serve` with default settings, per process and in total, at rest and after load.

Run: .venv/bin/python benchmarks/footprint.py [--load-seconds 30] [--rate 100] [--postgres URL]
     [--settings OPSBOT_WORKERS=2 OPSBOT_EXECUTORS=2]   (the multi-process model, for comparison)

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
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.ack import free_port, stop  # noqa: E402
from benchmarks.fake_services import DEFAULT_POSTGRES, opsbot_pod, postgres_schema  # noqa: E402
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
    parser.add_argument("--postgres", default=os.environ.get("OPSBOT_TEST_POSTGRES_URL", DEFAULT_POSTGRES))
    parser.add_argument(
        "--settings", nargs="*", default=[], metavar="NAME=VALUE", help="settings besides the defaults, e.g. OPSBOT_EXECUTORS=2"
    )
    args = parser.parse_args()
    with postgres_schema(args.postgres, "footprint") as (schema, url), tempfile.TemporaryDirectory(prefix="opsbot-footprint-") as directory:
        measure(Path(directory), args, schema, url)


def measure(workdir: Path, args: argparse.Namespace, schema: str, database_url: str) -> None:
    # Default process settings unless --settings says otherwise: nothing about workers, executors or pools is set here.
    with opsbot_pod(workdir, database_url, settings=dict(setting.split("=", 1) for setting in args.settings)) as pod:
        port = free_port()
        started = time.perf_counter()
        server = pod.serve(port)
        try:
            wait_until_ready(f"http://127.0.0.1:{port}/readyz")
            ready_seconds = time.perf_counter() - started
            print(f"footprint: opsbot serve ready (/readyz 200) {ready_seconds:.2f} s after start (load average {os.getloadavg()[0]:.1f})")
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
            result = {
                "settings": args.settings, "load_average": round(os.getloadavg()[0], 1), "ready_seconds": round(ready_seconds, 2),
                "rest": summary(at_rest), "after_load": summary(after),
            }  # fmt: skip
            print("RESULT " + json.dumps(result))
        finally:
            stop(server)


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
    pids = [root, *_descendants(root)]
    for pid in pids:
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        values = {match.group(1): int(match.group(2)) for match in re.finditer(r"^(\w+):\s+(\d+) kB", rollup, re.MULTILINE)}
        found.append(
            ProcessMemory(pid, _role(pid, root, command, executors, alone=len(pids) == 1), values.get("Pss", 0), values.get("Rss", 0))
        )
    return found


def report(when: str, processes: list[ProcessMemory]) -> None:
    print(f"footprint {when}:")
    for process in processes:
        print(f"  {process.role:<18} pid {process.pid:<7} PSS {process.pss_kib / 1024:6.1f} MiB  RSS {process.rss_kib / 1024:6.1f} MiB")
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


def _role(pid: int, root: int, command: str, executors: set[int], alone: bool) -> str:
    if pid == root:
        return "serve (all roles)" if alone else "supervisor"
    if "resource_tracker" in command:
        return "helper"
    if pid in executors:
        return "executor"
    if "spawn_main" in command or "multiprocessing" in command:
        return "http-worker"
    return "other"


if __name__ == "__main__":
    main()
