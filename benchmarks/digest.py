"""Benchmark: a health digest over 2,000 Deployments in 20 namespaces on the fake Kubernetes API server.

Prints the number of API requests the digest made (counted on the fake server) and the
time to build and render it. The point being measured: requests grow with namespaces (one
list of Deployments and one list of Pods per namespace), not with services.

Run: .venv/bin/python benchmarks/digest.py [--namespaces 20] [--per-namespace 100]
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bot.catalog.grammar import vocabulary_of

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.backends import Backends
from bot.catalog.catalog import Catalog
from bot.catalog.config import Environment, KubernetesAccess, KubernetesTarget, OpsbotConfig, Service
from bot.catalog.registry import build_registry
from bot.service_health import ServiceHealth
from bot.store.database import Database
from bot.store.migrate import upgrade
from bot.store.models import utcnow
from bot.watch.digest_content import HealthItem
from bot.watch.digest_render import render_digest
from bot.watch.digests import Digests, gather_health
from fakes.kubernetes import FakeKubernetesServer
from fakes.kubernetes.object_store import DEPLOYMENTS, PODS
from tests.doubles import RecordingNotifier

CLUSTER = "bench"
TEMPLATE_CLUSTER = "template"


def seed(server: FakeKubernetesServer, namespace: str, name: str, template: tuple[dict[str, Any], list[dict[str, Any]]]) -> None:
    """Store a rolled-out Deployment and its Ready pods by cloning a materialized one.

    ``add_deployment`` re-steps every pod of the cluster on each call (quadratic: 2,000
    adds would take longer than the benchmark), so one Deployment is materialized in a
    scratch cluster and copied under new names; the digest only lists Deployments and Pods.
    """
    deployment, pods = copy.deepcopy(template)
    deployment["metadata"].update(name=name, namespace=namespace, labels={"app": name})
    deployment["spec"]["selector"] = {"matchLabels": {"app": name}}
    deployment["spec"]["template"]["metadata"]["labels"]["app"] = name
    deployment["spec"]["template"]["spec"]["containers"][0]["image"] = f"registry/{name}:1.0"
    server.store.create(CLUSTER, DEPLOYMENTS, deployment)
    for index, pod in enumerate(pods):
        pod["metadata"].update(name=f"{name}-{index}", namespace=namespace)
        pod["metadata"]["labels"]["app"] = name
        pod["metadata"].pop("ownerReferences", None)
        server.store.create(CLUSTER, PODS, pod)


def materialized(server: FakeKubernetesServer, replicas: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    server.add_deployment(cluster=TEMPLATE_CLUSTER, namespace="template", name="template", image="registry/template:1.0", replicas=replicas)
    return server.deployment(TEMPLATE_CLUSTER, "template", "template"), server.pods(TEMPLATE_CLUSTER, "template")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--namespaces", type=int, default=20)
    parser.add_argument("--per-namespace", type=int, default=100)
    parser.add_argument("--replicas", type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch, FakeKubernetesServer(auto_tick=False) as server:
        kubeconfig = server.write_kubeconfig(Path(scratch) / "kubeconfig", contexts=[CLUSTER])
        started = time.perf_counter()
        template = materialized(server, args.replicas)
        services: dict[str, Service] = {}
        for ns_index in range(args.namespaces):
            namespace = f"team-{ns_index:02d}"
            server.add_namespace(CLUSTER, namespace)
            for index in range(args.per_namespace):
                name = f"svc-{ns_index:02d}-{index:03d}"
                seed(server, namespace, name, template)
                target = KubernetesTarget(context=CLUSTER, namespace=namespace, deployment=name)
                services[name] = Service(environments={"production": Environment(kubernetes=target)})
        seeded = time.perf_counter() - started
        config = OpsbotConfig(services=services, kubernetes=KubernetesAccess(kubeconfig=str(kubeconfig)))
        database = Database(f"sqlite:///{Path(scratch) / 'bench.db'}")
        upgrade(database)
        backends = Backends(config)

        def health(items: list[HealthItem]) -> list[ServiceHealth]:
            return gather_health(backends, items)

        catalog = Catalog(config=config, runbooks={}, registry=build_registry(), commands={}, vocabulary=vocabulary_of(config))
        digests = Digests(catalog=catalog, database=database, notifier=RecordingNotifier(), clock=utcnow, health=health)
        digest = digests.for_channel("C0BENCH")

        backends.kubernetes.cluster(CLUSTER)  # client construction (kubeconfig parsing) is not part of a digest
        server.clear_requests()
        started = time.perf_counter()
        content = digests.build(digest)
        built = time.perf_counter() - started
        started = time.perf_counter()
        message = render_digest(content)
        rendered = time.perf_counter() - started
        requests = server.requests

        per_kind = Counter(request.path.rsplit("/", 1)[-1] for request in requests)
        fleet = f"{len(services):,} Deployments in {args.namespaces} namespaces, {args.replicas} replicas each"
        print(f"fleet: {fleet} (seeded in {seeded:.1f} s)")
        print(f"API requests for one digest: {len(requests)} ({', '.join(f'{n} list {kind}' for kind, n in sorted(per_kind.items()))})")
        print(f"  one call per service would have been {2 * len(services):,} (Deployment + its Pods)")
        print(f"digest built in {built:.2f} s (health + audit + approvals + locks), rendered in {rendered * 1000:.1f} ms")
        print(f"summary: {message.text}")
        print(f"message: {len(message.sections)} sections, longest {max(len(section) for section in message.sections)} characters")
        print("RESULT " + json.dumps({
            "deployments": len(services), "namespaces": args.namespaces, "api_requests": len(requests),
            "built_seconds": round(built, 3), "rendered_ms": round(rendered * 1000, 1),
        }))  # fmt: skip
        backends.kubernetes.close()
        database.dispose()


if __name__ == "__main__":
    main()
