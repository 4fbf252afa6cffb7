"""The in-memory object store: clusters, namespaces and versioned objects.

It plays etcd plus the generic registry: it stamps ``uid``,
``creationTimestamp`` and a cluster-wide increasing ``resourceVersion``,
bumps ``metadata.generation`` only when ``spec`` changes, and turns a no-op
update into no write at all (so the resourceVersion does not move), exactly
the properties clients rely on for optimistic concurrency and for
``observedGeneration`` checks. Higher layers decide *what* to write.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from fakes.kubernetes.json_values import JsonObject, canonical, child, deep_copy, json_equal

DEPLOYMENTS = "deployments"
REPLICASETS = "replicasets"
PODS = "pods"

SYSTEM_NAMESPACES = ("default", "kube-node-lease", "kube-public", "kube-system")
_GENERATION_RESOURCES = frozenset({DEPLOYMENTS, REPLICASETS})
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with second precision, like ``metav1.Time``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    """Inverse of :func:`format_time`."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


class SimulatedClock:
    """Time as the fake cluster sees it.

    It starts at the wall clock and only moves when the controller ticks, so a
    600-second progress deadline can expire in a fraction of a real second and
    tests stay deterministic.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = (start or datetime.now(UTC)).replace(microsecond=0)

    def now(self) -> datetime:
        """The current simulated instant."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move simulated time forward."""
        self._now += timedelta(seconds=seconds)


@dataclass
class ClusterState:
    """Everything one fake cluster holds."""

    name: str
    namespaces: dict[str, JsonObject] = field(default_factory=dict)
    objects: dict[str, dict[tuple[str, str], JsonObject]] = field(default_factory=dict)

    def bucket(self, resource: str) -> dict[tuple[str, str], JsonObject]:
        """The (namespace, name) -> object map for one resource."""
        return self.objects.setdefault(resource, {})


class ObjectStore:
    """Thread-safe storage shared by the HTTP API and the controller.

    ``lock`` is re-entrant and public on purpose: a request handler or a
    controller tick holds it across a read-modify-write so the two never
    interleave, which is the single-writer guarantee etcd gives the real thing.
    """

    def __init__(self, clock: SimulatedClock, seed: int = 0) -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self._clusters: dict[str, ClusterState] = {}
        self._resource_version = 1000
        self._random = random.Random(seed)
        self._creation_order: dict[str, int] = {}

    # -- clusters and namespaces ------------------------------------------

    def add_cluster(self, name: str) -> None:
        """Create an empty cluster with the namespaces every cluster has."""
        with self.lock:
            if name in self._clusters:
                return
            self._clusters[name] = ClusterState(name)
            for namespace in SYSTEM_NAMESPACES:
                self.add_namespace(name, namespace)

    def has_cluster(self, name: str) -> bool:
        """Whether ``name`` is a known cluster."""
        with self.lock:
            return name in self._clusters

    def cluster_names(self) -> list[str]:
        """All clusters, sorted."""
        with self.lock:
            return sorted(self._clusters)

    def add_namespace(self, cluster: str, name: str) -> JsonObject:
        """Create a namespace if missing; return it."""
        with self.lock:
            state = self._cluster(cluster)
            if name not in state.namespaces:
                namespace: JsonObject = {
                    "kind": "Namespace",
                    "apiVersion": "v1",
                    "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
                    "spec": {"finalizers": ["kubernetes"]},
                    "status": {"phase": "Active"},
                }
                self._stamp_new(namespace)
                state.namespaces[name] = namespace
            return deep_copy(state.namespaces[name])

    def namespace(self, cluster: str, name: str) -> JsonObject | None:
        """A namespace object, or ``None``."""
        with self.lock:
            found = self._cluster(cluster).namespaces.get(name)
            return deep_copy(found) if found is not None else None

    def namespaces(self, cluster: str) -> list[JsonObject]:
        """All namespaces of a cluster, sorted by name."""
        with self.lock:
            state = self._cluster(cluster)
            return [deep_copy(state.namespaces[n]) for n in sorted(state.namespaces)]

    # -- objects -------------------------------------------------------------

    def get(self, cluster: str, resource: str, namespace: str, name: str) -> JsonObject | None:
        """A copy of one object, or ``None`` when absent."""
        with self.lock:
            found = self._cluster(cluster).bucket(resource).get((namespace, name))
            return deep_copy(found) if found is not None else None

    def list(self, cluster: str, resource: str, namespace: str | None = None) -> list[JsonObject]:
        """Copies of a resource's objects (one namespace or all), sorted."""
        with self.lock:
            bucket = self._cluster(cluster).bucket(resource)
            keys = sorted(k for k in bucket if namespace is None or k[0] == namespace)
            return [deep_copy(bucket[k]) for k in keys]

    def create(self, cluster: str, resource: str, obj: JsonObject, *, dry_run: bool = False) -> JsonObject:
        """Store a new object, stamping the fields the server owns."""
        with self.lock:
            new = deep_copy(obj)
            self._stamp_new(new, resource=resource, persist=not dry_run)
            if dry_run:
                child(new, "metadata").pop("resourceVersion", None)
                return new
            meta = new["metadata"]
            self._cluster(cluster).bucket(resource)[(meta.get("namespace", ""), meta["name"])] = new
            return deep_copy(new)

    def update(self, cluster: str, resource: str, obj: JsonObject, *, dry_run: bool = False) -> JsonObject:
        """Replace a stored object; the caller has already merged and validated.

        ``generation`` moves only on a ``spec`` change and nothing at all is
        written when the object is semantically unchanged.
        """
        with self.lock:
            meta = obj["metadata"]
            key = (meta.get("namespace", ""), meta["name"])
            bucket = self._cluster(cluster).bucket(resource)
            old = bucket[key]
            new = deep_copy(obj)
            new_meta = child(new, "metadata")
            old_meta = old["metadata"]
            for owned in ("uid", "creationTimestamp", "resourceVersion"):
                if owned in old_meta:
                    new_meta[owned] = old_meta[owned]
            if resource in _GENERATION_RESOURCES:
                changed = not json_equal(canonical(old.get("spec")), canonical(new.get("spec")))
                new_meta["generation"] = int(old_meta.get("generation", 1)) + (1 if changed else 0)
            if json_equal(canonical(old), canonical(new)):
                return deep_copy(old)
            if dry_run:
                return new
            new_meta["resourceVersion"] = self._next_resource_version()
            bucket[key] = new
            return deep_copy(new)

    def delete(self, cluster: str, resource: str, namespace: str, name: str) -> JsonObject | None:
        """Remove an object; returns what was removed."""
        with self.lock:
            removed = self._cluster(cluster).bucket(resource).pop((namespace, name), None)
            if removed is not None:
                self._creation_order.pop(str(removed["metadata"].get("uid")), None)
                self._next_resource_version()
            return removed

    def exists_uid(self, cluster: str, resource: str, uid: str) -> bool:
        """Whether an object with this uid is stored (used by the GC)."""
        with self.lock:
            return any(o["metadata"].get("uid") == uid for o in self._cluster(cluster).bucket(resource).values())

    def creation_rank(self, obj: JsonObject) -> tuple[str, int]:
        """Sort key for "oldest first" that breaks same-second ties stably."""
        meta = obj.get("metadata") or {}
        return str(meta.get("creationTimestamp", "")), self._creation_order.get(str(meta.get("uid")), 0)

    def resource_version(self) -> str:
        """The latest resourceVersion handed out (for list metadata)."""
        with self.lock:
            return str(self._resource_version)

    def random_suffix(self, length: int = 5) -> str:
        """A pod-name style suffix from the apimachinery alphabet."""
        with self.lock:
            return "".join(self._random.choice(_NAME_ALPHABET) for _ in range(length))

    def iter_clusters(self) -> Iterator[str]:
        """Iterate cluster names (snapshot)."""
        yield from self.cluster_names()

    # -- internals -----------------------------------------------------------

    def _cluster(self, name: str) -> ClusterState:
        try:
            return self._clusters[name]
        except KeyError:
            raise KeyError(f"unknown cluster {name!r}") from None

    def _next_resource_version(self) -> str:
        self._resource_version += 1
        return str(self._resource_version)

    def _new_uid(self) -> str:
        return str(uuid.UUID(int=self._random.getrandbits(128), version=4))

    def _stamp_new(self, obj: JsonObject, *, resource: str = "", persist: bool = True) -> None:
        meta = child(obj, "metadata")
        meta["uid"] = self._new_uid()
        meta["creationTimestamp"] = format_time(self.clock.now())
        if resource in _GENERATION_RESOURCES:
            meta["generation"] = 1
        if persist:
            meta["resourceVersion"] = self._next_resource_version()
            self._creation_order[meta["uid"]] = self._resource_version
        for system in ("deletionTimestamp", "selfLink", "managedFields"):
            meta.pop(system, None)
