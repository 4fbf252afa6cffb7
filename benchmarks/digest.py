"""Benchmark: a health digest over thousands of Deployments, opsbot's share measured on its own.

The fake Kubernetes API server runs in its own process (benchmarks/digest_fleet.py), so this
process holds only opsbot: its CPU time around the digest build (``time.process_time()``) is
opsbot's share of a digest, whatever the fake and the rest of a shared machine cost; wall time
is printed beside it, with the load average, since wall time also counts waiting for a core, and
so is the fake's own CPU time serving the digest (the rest of the wall time, on a quiet machine).
Also printed: the API requests the digest made (counted by the fake: they must grow with
namespaces, not services), and the peak resident memory of this process (``ru_maxrss``: lists
are read in pages of ``LIST_PAGE_SIZE``, so memory stays bounded by a namespace, not the fleet).

``--sizes`` runs the issue's two fleets in one invocation: 2,000 Deployments in 20 namespaces,
then 10,000 in 50 (in that order, so each size's peak RSS is its own: ``ru_maxrss`` only grows).
``--profile`` prints where opsbot's time goes (cProfile of one more build, not timed).

Run: .venv/bin/python benchmarks/digest.py --sizes --runs 5
     .venv/bin/python benchmarks/digest.py [--namespaces 20] [--per-namespace 100] [--runs 5] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.digest_fleet import CLUSTER, namespace_name, service_name  # noqa: E402
from bot.backends import Backends  # noqa: E402
from bot.catalog.catalog import Catalog  # noqa: E402
from bot.catalog.config import Environment, KubernetesAccess, KubernetesTarget, OpsbotConfig, Service  # noqa: E402
from bot.catalog.grammar import vocabulary_of  # noqa: E402
from bot.catalog.registry import build_registry  # noqa: E402
from bot.service_health import ServiceHealth  # noqa: E402
from bot.store.database import Database  # noqa: E402
from bot.store.migrate import upgrade  # noqa: E402
from bot.store.models import utcnow  # noqa: E402
from bot.watch.digest_content import HealthItem  # noqa: E402
from bot.watch.digest_render import render_digest  # noqa: E402
from bot.watch.digests import Digests, gather_health  # noqa: E402
from tests.doubles import RecordingNotifier  # noqa: E402

SIZES = ((20, 100), (50, 200))
"""The issue's fleets: 2,000 Deployments in 20 namespaces (≤ 0.4 s), 10,000 in 50 (≤ 2 s)."""


class Fleet:
    """The fake API server process (benchmarks/digest_fleet.py): seeded, then asked for its request count."""

    def __init__(self, namespaces: int, per_namespace: int, replicas: int, kubeconfig: Path) -> None:
        command = [
            sys.executable, str(REPO / "benchmarks" / "digest_fleet.py"), "--namespaces", str(namespaces),
            "--per-namespace", str(per_namespace), "--replicas", str(replicas), "--kubeconfig", str(kubeconfig),
        ]  # fmt: skip
        self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)
        assert self._process.stdin is not None and self._process.stdout is not None
        self._commands, self._answers = self._process.stdin, self._process.stdout
        ready = self._answers.readline()
        if not ready:
            raise SystemExit(f"the fake Kubernetes API process ended before it was ready (exit {self._process.wait()})")
        self.ready: dict[str, Any] = json.loads(ready)

    def _ask(self, command: str) -> str:
        self._commands.write(command + "\n")
        self._commands.flush()
        return self._answers.readline()

    def clear(self) -> float:
        """Forget the requests; the fake's CPU seconds so far."""
        return float(json.loads(self._ask("clear"))["cpu_seconds"])

    def requests(self) -> dict[str, Any]:
        answer: dict[str, Any] = json.loads(self._ask("requests"))
        return answer

    def close(self) -> None:
        self._commands.close()
        self._process.wait(timeout=30)


@contextmanager
def fleet(namespaces: int, per_namespace: int, replicas: int, scratch: Path) -> Iterator[Fleet]:
    process = Fleet(namespaces, per_namespace, replicas, scratch / "kubeconfig")
    try:
        yield process
    finally:
        process.close()


@dataclass
class Run:
    wall: float
    cpu: float
    fake_cpu: float
    requests: int


def catalog_for(namespaces: int, per_namespace: int, kubeconfig: str) -> OpsbotConfig:
    """One service per seeded Deployment, each with a production environment on it."""
    services: dict[str, Service] = {}
    for ns_index in range(namespaces):
        for index in range(per_namespace):
            name = service_name(ns_index, index)
            target = KubernetesTarget(context=CLUSTER, namespace=namespace_name(ns_index), deployment=name)
            services[name] = Service(environments={"production": Environment(kubernetes=target)})
    return OpsbotConfig(services=services, kubernetes=KubernetesAccess(kubeconfig=kubeconfig))


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(namespaces: int, per_namespace: int, replicas: int, runs: int, profile: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch, fleet(namespaces, per_namespace, replicas, Path(scratch)) as fake:
        config = catalog_for(namespaces, per_namespace, fake.ready["kubeconfig"])
        database = Database(f"sqlite:///{Path(scratch) / 'bench.db'}")
        upgrade(database)
        backends = Backends(config)

        def health(items: list[HealthItem]) -> list[ServiceHealth]:
            return gather_health(backends, items)

        catalog = Catalog(config=config, runbooks={}, registry=build_registry(), commands={}, vocabulary=vocabulary_of(config))
        digests = Digests(catalog=catalog, database=database, notifier=RecordingNotifier(), clock=utcnow, health=health)
        digest = digests.for_channel("C0BENCH")
        backends.kubernetes.cluster(CLUSTER)  # client construction (kubeconfig parsing) is not part of a digest
        rss_before = current_rss_mib()

        results: list[Run] = []
        per_kind: dict[str, int] = {}
        content = None
        for _ in range(runs):
            fake_cpu_started = fake.clear()
            wall_started, cpu_started = time.perf_counter(), time.process_time()
            content = digests.build(digest)
            cpu, wall = time.process_time() - cpu_started, time.perf_counter() - wall_started
            counted = fake.requests()
            per_kind = counted["per_kind"]
            results.append(Run(wall=wall, cpu=cpu, fake_cpu=counted["cpu_seconds"] - fake_cpu_started, requests=counted["requests"]))
        assert content is not None
        rendered_started = time.perf_counter()
        message = render_digest(content)
        rendered = time.perf_counter() - rendered_started
        peak = peak_rss_mib()

        if profile:
            profiler = cProfile.Profile()
            profiler.runcall(digests.build, digest)
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(os.environ.get("DIGEST_PROFILE_SORT", "cumulative")).print_stats(25)
            print(out.getvalue())
        backends.kubernetes.close()
        database.dispose()

    deployments = namespaces * per_namespace
    walls, cpus, fake_cpus = [run.wall for run in results], [run.cpu for run in results], [run.fake_cpu for run in results]
    states: dict[str, int] = {}
    for item in content.health:
        states[item.state] = states.get(item.state, 0) + 1
    figures = {
        "deployments": deployments, "namespaces": namespaces, "runs": runs,
        "api_requests": results[-1].requests, "requests_per_kind": per_kind,
        "requests_per_namespace": round(results[-1].requests / namespaces, 2),
        "wall_best_s": round(min(walls), 3), "wall_median_s": round(statistics.median(walls), 3),
        "cpu_best_s": round(min(cpus), 3), "cpu_median_s": round(statistics.median(cpus), 3),
        "fake_cpu_median_s": round(statistics.median(fake_cpus), 3),
        "rss_before_mib": round(rss_before, 1), "peak_rss_mib": round(peak, 1),
        "rendered_ms": round(rendered * 1000, 1), "seeded_s": fake.ready["seeded_seconds"],
        "load_avg_1m": round(os.getloadavg()[0], 2), "states": states,
    }  # fmt: skip
    seeded = fake.ready["seeded_seconds"]
    print(f"fleet: {deployments:,} Deployments in {namespaces} namespaces, {replicas} replicas each (seeded in {seeded} s, own process)")
    kinds = ", ".join(f"{n} list {kind}" for kind, n in per_kind.items())
    print(f"  API requests for one digest: {results[-1].requests} ({kinds}); one call per service would be {2 * deployments:,}")
    wall_text, cpu_text = f"{min(walls):.3f}/{statistics.median(walls):.3f}", f"{min(cpus):.3f}/{statistics.median(cpus):.3f}"
    print(f"  built, best/median of {runs}: wall {wall_text} s, opsbot CPU {cpu_text} s")
    print(f"  the fake API server's CPU serving it (its own process), median: {statistics.median(fake_cpus):.3f} s")
    print(f"  rendered in {rendered * 1000:.1f} ms: {message.text}")
    load = os.getloadavg()[0]
    print(f"  RSS {rss_before:.0f} MiB before the digests, peak {peak:.0f} MiB; load average {load:.2f}; states {states}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--namespaces", type=int, default=20)
    parser.add_argument("--per-namespace", type=int, default=100)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5, help="digests built per size; best and median are reported")
    parser.add_argument("--sizes", action="store_true", help="run 2,000 Deployments/20 namespaces, then 10,000/50")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one more build (not timed)")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error(f"--runs must be at least 1, got {args.runs}")

    sizes = SIZES if args.sizes else ((args.namespaces, args.per_namespace),)
    results = [measure(namespaces, per_namespace, args.replicas, args.runs, args.profile) for namespaces, per_namespace in sizes]
    print("RESULT " + json.dumps({"sizes": results, "date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count()}))


if __name__ == "__main__":
    main()
