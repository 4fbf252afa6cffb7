"""The digest benchmark's fleet: a fake Kubernetes API server seeded with N namespaces × M Deployments.

Run by benchmarks/digest.py in its own process, so the benchmark's process holds only opsbot and
its CPU time is opsbot's share of a digest (in one process, the fake's request threads and JSON
encoding were counted as opsbot's). Seeds every Deployment rolled out with its Ready pods, writes
a kubeconfig, prints one JSON line when ready (URL, port, kubeconfig, cluster), then answers one
command per stdin line: ``requests`` prints a JSON object with the number of requests received,
their count per resource and the fake's CPU seconds so far (what serving the digest cost the fake,
by difference), ``clear`` forgets the requests and prints its CPU seconds. Exits when stdin closes
(or when killed).

Run: .venv/bin/python benchmarks/digest_fleet.py --namespaces 20 --per-namespace 100 --kubeconfig /tmp/kc
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fakes.kubernetes import FakeKubernetesServer
from fakes.kubernetes.object_store import DEPLOYMENTS, PODS

CLUSTER = "bench"
TEMPLATE_CLUSTER = "template"

Template = tuple[dict[str, Any], list[dict[str, Any]]]


def service_name(ns_index: int, index: int) -> str:
    """The Deployment (and service) name of the ``index``-th Deployment of namespace ``ns_index``; the benchmark's catalog uses it too."""
    return f"svc-{ns_index:02d}-{index:03d}"


def namespace_name(ns_index: int) -> str:
    return f"team-{ns_index:02d}"


def seed(server: FakeKubernetesServer, namespace: str, name: str, template: Template) -> None:
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


def materialized(server: FakeKubernetesServer, replicas: int) -> Template:
    """One Deployment rolled out by the simulated controller, with its pods: the template every seeded one copies."""
    server.add_deployment(cluster=TEMPLATE_CLUSTER, namespace="template", name="template", image="registry/template:1.0", replicas=replicas)
    return server.deployment(TEMPLATE_CLUSTER, "template", "template"), server.pods(TEMPLATE_CLUSTER, "template")


def populate(server: FakeKubernetesServer, namespaces: int, per_namespace: int, replicas: int) -> None:
    template = materialized(server, replicas)
    for ns_index in range(namespaces):
        namespace = namespace_name(ns_index)
        server.add_namespace(CLUSTER, namespace)
        for index in range(per_namespace):
            seed(server, namespace, service_name(ns_index, index), template)


def request_counts(server: FakeKubernetesServer) -> dict[str, Any]:
    """How many requests the fake has received, how many per resource (the path's last segment), and its CPU seconds so far."""
    requests = server.requests
    per_kind = Counter(request.path.rsplit("/", 1)[-1] for request in requests)
    return {"requests": len(requests), "per_kind": dict(sorted(per_kind.items())), "cpu_seconds": time.process_time()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--namespaces", type=int, default=20)
    parser.add_argument("--per-namespace", type=int, default=100)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--kubeconfig", type=Path, required=True, help="where to write the kubeconfig")
    args = parser.parse_args()

    with FakeKubernetesServer(auto_tick=False) as server:
        kubeconfig = server.write_kubeconfig(args.kubeconfig, contexts=[CLUSTER])
        started = time.perf_counter()
        populate(server, args.namespaces, args.per_namespace, args.replicas)
        seeded = time.perf_counter() - started
        ready = {
            "url": server.url,
            "port": server.port,
            "kubeconfig": str(kubeconfig),
            "cluster": CLUSTER,
            "seeded_seconds": round(seeded, 2),
        }
        print(json.dumps(ready), flush=True)
        for line in sys.stdin:  # until the benchmark closes our stdin
            command = line.strip()
            if command == "requests":
                print(json.dumps(request_counts(server)), flush=True)
            elif command == "clear":
                server.clear_requests()
                print(json.dumps({"cpu_seconds": time.process_time()}), flush=True)
            else:
                print(json.dumps({"error": f"unknown command {command!r}: expected 'requests' or 'clear'"}), flush=True)


if __name__ == "__main__":
    main()
