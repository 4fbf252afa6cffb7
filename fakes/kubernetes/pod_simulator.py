"""The ReplicaSet controller and a kubelet stand-in, in one small simulator.

A ReplicaSet's pods are created and deleted to match ``spec.replicas``; each
pod then walks Pending -> Running -> Ready one tick at a time. Pods whose
image the behaviour predicate calls unhealthy start, never pass readiness,
and crash-loop: ``restartCount`` grows every few ticks and the container
waits in ``CrashLoopBackOff``, which is what a ChatOps bot shows a human
when a deploy goes wrong.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from fakes.kubernetes.deployutil import controller_ref, owned_by, replicas_of
from fakes.kubernetes.json_values import JsonObject, deep_copy, dig
from fakes.kubernetes.object_store import PODS, REPLICASETS, ObjectStore, format_time

ImageHealth = Callable[[str], bool]
"""Returns True when containers running ``image`` become ready."""


def image_tag(image: str) -> str:
    """The tag part of an image reference (``""`` when untagged)."""
    last = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else ""


def default_image_health(image: str) -> bool:
    """Healthy unless the tag ends with ``-broken`` (the demo's failure switch)."""
    return not image_tag(image).endswith("-broken")


@dataclass
class _PodLife:
    """Simulation state a real kubelet would keep; never shown to clients."""

    born_tick: int
    born_at: datetime
    healthy: dict[str, bool]
    started_at: datetime | None = None
    ready_at: datetime | None = None
    restarts: dict[str, int] = field(default_factory=dict)
    last_exit: dict[str, datetime] = field(default_factory=dict)


class PodSimulator:
    """Keeps pods in line with their ReplicaSets and ages them tick by tick."""

    def __init__(
        self,
        store: ObjectStore,
        *,
        image_health: ImageHealth = default_image_health,
        start_ticks: int = 1,
        crash_interval_ticks: int = 3,
    ) -> None:
        self.store = store
        self.image_health = image_health
        self.start_ticks = max(start_ticks, 1)
        self.crash_interval_ticks = max(crash_interval_ticks, 1)
        self._lives: dict[str, _PodLife] = {}

    # -- ReplicaSet controller -------------------------------------------------

    def owned_pods(self, cluster: str, rs: JsonObject) -> list[JsonObject]:
        """Pods whose controller owner is ``rs``, oldest first."""
        namespace = rs["metadata"]["namespace"]
        uid = rs["metadata"]["uid"]
        pods = [p for p in self.store.list(cluster, PODS, namespace) if owned_by(p, uid)]
        return sorted(pods, key=self.store.creation_rank)

    def reconcile(self, cluster: str, rs: JsonObject, tick: int) -> JsonObject:
        """Create or delete pods to match ``spec.replicas``, then update status."""
        pods = self.owned_pods(cluster, rs)
        desired = replicas_of(rs)
        for _ in range(desired - len(pods)):
            pods.append(self._create_pod(cluster, rs, tick))
        if len(pods) > desired:
            for victim in self._deletion_order(pods)[: len(pods) - desired]:
                self.delete_pod(cluster, victim)
            pods = self.owned_pods(cluster, rs)
        return self._update_rs_status(cluster, rs, pods)

    def _deletion_order(self, pods: list[JsonObject]) -> list[JsonObject]:
        """Unready pods go first, then the youngest (``ActivePodsWithRanks``)."""
        youngest_first = sorted(pods, key=self.store.creation_rank, reverse=True)
        return sorted(youngest_first, key=_is_ready)

    def _update_rs_status(self, cluster: str, rs: JsonObject, pods: list[JsonObject]) -> JsonObject:
        now = self.store.clock.now()
        min_ready = timedelta(seconds=int(dig(rs, "spec", "minReadySeconds") or 0))
        ready = [p for p in pods if _is_ready(p)]
        available = 0
        for pod in ready:
            life = self._lives.get(pod["metadata"]["uid"])
            if life and life.ready_at is not None and life.ready_at + min_ready <= now:
                available += 1
        counters = {
            "fullyLabeledReplicas": len(pods),
            "readyReplicas": len(ready),
            "availableReplicas": available,
            "observedGeneration": int(rs["metadata"].get("generation", 1)),
        }
        updated = deep_copy(rs)
        updated["status"] = {"replicas": len(pods), **{k: v for k, v in counters.items() if v}}
        return self.store.update(cluster, REPLICASETS, updated)

    def _create_pod(self, cluster: str, rs: JsonObject, tick: int) -> JsonObject:
        template = rs["spec"]["template"]
        meta = rs["metadata"]
        name = f"{meta['name']}-{self.store.random_suffix()}"
        pod_meta: JsonObject = {
            "name": name,
            "generateName": f"{meta['name']}-",
            "namespace": meta["namespace"],
            "labels": dict(dig(template, "metadata", "labels") or {}),
            "ownerReferences": [controller_ref(rs)],
        }
        if dig(template, "metadata", "annotations"):
            pod_meta["annotations"] = dict(template["metadata"]["annotations"])
        spec = deep_copy(template.get("spec") or {})
        spec.setdefault("serviceAccountName", "default")
        spec["nodeName"] = f"{cluster}-worker-{1 + int(_digest(name), 16) % 3}"
        pod: JsonObject = {"kind": "Pod", "apiVersion": "v1", "metadata": pod_meta, "spec": spec, "status": {}}
        created = self.store.create(cluster, PODS, pod)
        containers = [c.get("name", "") for c in spec.get("containers") or []]
        images = {c.get("name", ""): str(c.get("image", "")) for c in spec.get("containers") or []}
        life = _PodLife(tick, self.store.clock.now(), {n: self.image_health(images[n]) for n in containers})
        self._lives[created["metadata"]["uid"]] = life
        return self._refresh(cluster, created, tick)

    def delete_pod(self, cluster: str, pod: JsonObject) -> None:
        """Remove a pod immediately (no graceful Terminating phase)."""
        meta = pod["metadata"]
        self.store.delete(cluster, PODS, meta["namespace"], meta["name"])
        self._lives.pop(meta["uid"], None)

    def mature(self, pod: JsonObject, ticks: int) -> None:
        """Age a pod as if created ``ticks`` ago (for pre-rolled-out deployments)."""
        life = self._lives.get(pod["metadata"]["uid"])
        if life is not None:
            life.born_tick -= ticks

    # -- kubelet -----------------------------------------------------------------

    def step(self, cluster: str, tick: int) -> None:
        """Advance every pod of a cluster by one tick of its lifecycle."""
        pods = self.store.list(cluster, PODS)
        for pod in pods:
            self._refresh(cluster, pod, tick)
        if len(self._lives) > 4 * max(len(pods), 64):
            self._forget_missing()

    def _forget_missing(self) -> None:
        """Drop lifecycle state of pods deleted behind our back (API deletes, GC)."""
        alive = {p["metadata"]["uid"] for cluster in self.store.cluster_names() for p in self.store.list(cluster, PODS)}
        self._lives = {uid: life for uid, life in self._lives.items() if uid in alive}

    def _refresh(self, cluster: str, pod: JsonObject, tick: int) -> JsonObject:
        life = self._lives.get(pod["metadata"]["uid"])
        if life is None:
            return pod
        updated = deep_copy(pod)
        updated["status"] = self._status(pod, life, tick)
        return self.store.update(cluster, PODS, updated)

    def _status(self, pod: JsonObject, life: _PodLife, tick: int) -> JsonObject:
        now = self.store.clock.now()
        age = tick - life.born_tick
        running = age >= self.start_ticks
        if running and life.started_at is None:
            life.started_at = now
        statuses = [self._container_status(pod, c, life, age) for c in pod["spec"].get("containers") or []]
        all_ready = running and all(s["ready"] for s in statuses)
        if all_ready and life.ready_at is None:
            life.ready_at = now
        if not all_ready:
            life.ready_at = None
        return self._pod_status(pod, life, statuses, running=running, ready=all_ready)

    def _pod_status(self, pod: JsonObject, life: _PodLife, statuses: list[JsonObject], *, running: bool, ready: bool) -> JsonObject:
        born = format_time(life.born_at)
        ready_time = format_time(life.ready_at) if life.ready_at else born
        unready = [s["name"] for s in statuses if not s["ready"]]
        ready_condition: JsonObject = {"type": "Ready", "status": "True" if ready else "False"}
        containers_ready: JsonObject = {"type": "ContainersReady", "status": ready_condition["status"]}
        for condition in (ready_condition, containers_ready):
            condition["lastProbeTime"] = None
            condition["lastTransitionTime"] = ready_time
            if not ready:
                condition["reason"] = "ContainersNotReady"
                condition["message"] = f"containers with unready status: [{' '.join(unready)}]"
        digest = _digest(pod["metadata"]["name"])
        status: JsonObject = {
            "phase": "Running" if running else "Pending",
            "conditions": [
                {
                    "type": "PodReadyToStartContainers",
                    "status": "True" if running else "False",
                    "lastProbeTime": None,
                    "lastTransitionTime": born,
                },
                {"type": "Initialized", "status": "True", "lastProbeTime": None, "lastTransitionTime": born},
                ready_condition,
                containers_ready,
                {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": born},
            ],
            "hostIP": f"10.0.0.{1 + int(digest[:2], 16) % 3}",
            "podIP": f"10.244.{int(digest[2:4], 16)}.{int(digest[4:6], 16)}",
            "startTime": born,
            "containerStatuses": statuses,
            "qosClass": "BestEffort",
        }
        if not running:
            del status["podIP"]
        return status

    def _container_status(self, pod: JsonObject, container: JsonObject, life: _PodLife, age: int) -> JsonObject:
        name = str(container.get("name", ""))
        image = str(container.get("image", ""))
        status: JsonObject = {
            "name": name,
            "image": image,
            "imageID": "",
            "ready": False,
            "restartCount": 0,
            "started": False,
            "state": {},
            "lastState": {},
        }
        if age < self.start_ticks:
            status["state"] = {"waiting": {"reason": "ContainerCreating"}}
            return status
        status["imageID"] = f"{image.split(':', maxsplit=1)[0]}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"
        started_at = format_time(life.started_at or life.born_at)
        if life.healthy.get(name, True):
            status.update(ready=True, started=True, state={"running": {"startedAt": started_at}})
            return status
        crashes = 0 if age == self.start_ticks else 1 + (age - self.start_ticks - 1) // self.crash_interval_ticks
        if crashes == 0:
            status.update(started=True, state={"running": {"startedAt": started_at}})
            return status
        if life.restarts.get(name) != crashes:
            life.restarts[name] = crashes
            life.last_exit[name] = self.store.clock.now()
        exited = format_time(life.last_exit[name])
        backoff = min(10 * 2 ** (crashes - 1), 300)
        meta = pod["metadata"]
        status["restartCount"] = crashes
        status["state"] = {
            "waiting": {
                "reason": "CrashLoopBackOff",
                "message": f"back-off {backoff}s restarting failed container={name} pod={meta['name']}_{meta['namespace']}({meta['uid']})",
            }
        }
        status["lastState"] = {
            "terminated": {
                "exitCode": 1,
                "reason": "Error",
                "startedAt": exited,
                "finishedAt": exited,
                "containerID": f"containerd://{_digest(exited + name)}",
            }
        }
        return status


def _is_ready(pod: JsonObject) -> bool:
    for condition in dig(pod, "status", "conditions") or []:
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return False


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def pod_ready(pod: JsonObject) -> bool:
    """Whether a pod reports ``Ready=True``."""
    return _is_ready(pod)
