"""A simulated kube-controller-manager: deployment controller plus garbage collector.

:class:`DeploymentController` follows ``pkg/controller/deployment`` closely
enough that client logic built on its observable behaviour works unchanged:
a template change gets a ReplicaSet named ``<deployment>-<pod-template-hash>``
with the next ``deployment.kubernetes.io/revision`` (or reuses the one whose
template matches, bumping its revision, which is how ``kubectl rollout undo``
works), rolling updates respect maxSurge/maxUnavailable, scaling is
proportional, ``paused`` stops rollouts, and the ``Progressing`` condition
reports NewReplicaSetCreated / ReplicaSetUpdated / NewReplicaSetAvailable /
ProgressDeadlineExceeded as a real one does.

:class:`ControllerManager` drives it in discrete ticks: each tick advances
simulated time, collects garbage, ages pods, reconciles ReplicaSets and syncs
every Deployment, so tests control rollout progress precisely.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import NamedTuple

from fakes.kubernetes import deployutil as du
from fakes.kubernetes.jobs import JOBS, JobController
from fakes.kubernetes.json_values import JsonObject, child, deep_copy, dig, json_equal
from fakes.kubernetes.object_store import DEPLOYMENTS, PODS, REPLICASETS, ObjectStore
from fakes.kubernetes.pod_simulator import ImageHealth, PodSimulator, default_image_health

logger = logging.getLogger(__name__)

_MAX_PASSES = 6
"""Syncs per deployment per tick; a real controller re-syncs on every RS event."""


class _Family(NamedTuple):
    """A Deployment with its new and old ReplicaSets, as one sync sees them."""

    deployment: JsonObject
    new_rs: JsonObject | None
    old: list[JsonObject]
    created: bool


class DeploymentController:
    """One deployment sync at a time, against the shared store."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    # -- entry point ---------------------------------------------------------

    def sync(self, cluster: str, deployment: JsonObject) -> bool:
        """Run one ``syncDeployment``; returns whether any ReplicaSet was changed."""
        d = self._check_paused_conditions(cluster, deployment)
        if dig(d, "spec", "paused"):
            return self._sync_scale_only(cluster, d)
        scaling = self._is_scaling_event(cluster, d)
        d = self._fresh(cluster, d)
        if scaling:
            return self._sync_scale_only(cluster, d)
        if not du.is_rolling(d):
            return self._rollout_recreate(cluster, d)
        return self._rollout_rolling(cluster, d)

    def owned_replicasets(self, cluster: str, deployment: JsonObject) -> list[JsonObject]:
        """The Deployment's ReplicaSets, oldest first."""
        namespace = deployment["metadata"]["namespace"]
        uid = deployment["metadata"]["uid"]
        owned = [rs for rs in self.store.list(cluster, REPLICASETS, namespace) if du.owned_by(rs, uid)]
        return sorted(owned, key=self.store.creation_rank)

    # -- replica set discovery and creation ---------------------------------

    def _fresh(self, cluster: str, d: JsonObject) -> JsonObject:
        meta = d["metadata"]
        return self.store.get(cluster, DEPLOYMENTS, meta["namespace"], meta["name"]) or d

    def _write(self, cluster: str, d: JsonObject) -> JsonObject:
        return self.store.update(cluster, DEPLOYMENTS, d)

    def _find_new(self, d: JsonObject, rs_list: list[JsonObject]) -> JsonObject | None:
        template = dig(d, "spec", "template")
        return next((rs for rs in rs_list if du.templates_equal(dig(rs, "spec", "template"), template)), None)

    def _get_all(self, cluster: str, d: JsonObject, *, create: bool) -> _Family:
        """``getAllReplicaSetsAndSyncRevision``: the Deployment's ReplicaSet family."""
        rs_list = self.owned_replicasets(cluster, d)
        existing = self._find_new(d, rs_list)
        old = [rs for rs in rs_list if existing is None or rs["metadata"]["uid"] != existing["metadata"]["uid"]]
        new_revision = du.max_revision(old) + 1
        if existing is not None:
            d, new_rs = self._sync_existing_new_rs(cluster, d, existing, new_revision)
            return _Family(d, new_rs, old, created=False)
        if not create:
            return _Family(d, None, old, created=False)
        d, new_rs = self._create_new_rs(cluster, d, old, new_revision)
        return _Family(d, new_rs, old, created=True)

    def _sync_existing_new_rs(self, cluster: str, d: JsonObject, rs: JsonObject, new_revision: int) -> tuple[JsonObject, JsonObject]:
        updated = deep_copy(rs)
        changed = self._set_new_rs_annotations(d, updated, new_revision, exists=True)
        min_ready = int(dig(d, "spec", "minReadySeconds") or 0)
        if int(dig(updated, "spec", "minReadySeconds") or 0) != min_ready:
            self._set_min_ready(updated, min_ready)
            changed = True
        if changed:
            return d, self.store.update(cluster, REPLICASETS, updated)
        needs_update = self._set_deployment_revision(d, str(du.revision(rs)))
        status = child(d, "status")
        if du.has_progress_deadline(d) and du.get_condition(status, "Progressing") is None:
            message = f'Found new replica set "{rs["metadata"]["name"]}"'
            now = self.store.clock.now()
            du.set_condition(status, du.new_condition("Progressing", "True", du.FOUND_NEW_RS, message, now))
            needs_update = True
        if needs_update:
            d = self._write(cluster, d)
        return d, rs

    def _create_new_rs(self, cluster: str, d: JsonObject, old: list[JsonObject], new_revision: int) -> tuple[JsonObject, JsonObject]:
        meta = d["metadata"]
        template = deep_copy(dig(d, "spec", "template") or {})
        collisions = int(dig(d, "status", "collisionCount") or 0)
        while True:
            pod_hash = du.pod_template_hash(template, collisions)
            name = f"{meta['name']}-{pod_hash}"
            if self.store.get(cluster, REPLICASETS, meta["namespace"], name) is None:
                break
            collisions += 1
        if collisions:
            child(d, "status")["collisionCount"] = collisions
        labels = {**(dig(template, "metadata", "labels") or {}), du.HASH_LABEL: pod_hash}
        child(template, "metadata")["labels"] = labels
        selector = deep_copy(dig(d, "spec", "selector") or {})
        child(selector, "matchLabels")[du.HASH_LABEL] = pod_hash
        rs: JsonObject = {
            "kind": "ReplicaSet",
            "apiVersion": "apps/v1",
            "metadata": {
                "name": name,
                "namespace": meta["namespace"],
                "labels": dict(labels),
                "annotations": {},
                "ownerReferences": [du.controller_ref(d)],
            },
            "spec": {"replicas": 0, "selector": selector, "template": template},
            "status": {"replicas": 0},
        }
        self._set_min_ready(rs, int(dig(d, "spec", "minReadySeconds") or 0))
        rs["spec"]["replicas"] = self._new_rs_replicas(d, [*old, rs], rs)
        self._set_new_rs_annotations(d, rs, new_revision, exists=False)
        created = self.store.create(cluster, REPLICASETS, rs)
        self._set_deployment_revision(d, str(new_revision))
        if du.has_progress_deadline(d):
            message = f'Created new replica set "{name}"'
            condition = du.new_condition("Progressing", "True", du.NEW_RS_CREATED, message, self.store.clock.now())
            du.set_condition(child(d, "status"), condition)
        logger.debug("cluster %s: created ReplicaSet %s/%s", cluster, meta["namespace"], name)
        return self._write(cluster, d), created

    @staticmethod
    def _set_min_ready(rs: JsonObject, seconds: int) -> None:
        spec = child(rs, "spec")
        if seconds:
            spec["minReadySeconds"] = seconds
        else:
            spec.pop("minReadySeconds", None)

    @staticmethod
    def _set_deployment_revision(d: JsonObject, value: str) -> bool:
        annotations = child(child(d, "metadata"), "annotations")
        if annotations.get(du.REVISION) == value:
            return False
        annotations[du.REVISION] = value
        return True

    def _set_new_rs_annotations(self, d: JsonObject, rs: JsonObject, new_revision: int, *, exists: bool) -> bool:
        """``SetNewReplicaSetAnnotations``: copy, bump revision, keep history."""
        annotations = child(child(rs, "metadata"), "annotations")
        changed = False
        for key, value in (dig(d, "metadata", "annotations") or {}).items():
            if key not in du.ANNOTATIONS_NOT_COPIED and annotations.get(key) != value:
                annotations[key] = value
                changed = True
        old_raw = annotations.get(du.REVISION)
        old_revision = du.revision(rs)
        if old_revision < new_revision:
            annotations[du.REVISION] = str(new_revision)
            changed = True
            if old_raw is not None:
                history = annotations.get(du.REVISION_HISTORY, "")
                annotations[du.REVISION_HISTORY] = f"{history},{old_raw}" if history else str(old_raw)
        if not exists and self._set_replicas_annotations(d, rs):
            changed = True
        return changed

    @staticmethod
    def _set_replicas_annotations(d: JsonObject, rs: JsonObject) -> bool:
        annotations = child(child(rs, "metadata"), "annotations")
        desired = str(du.replicas_of(d))
        ceiling = str(du.replicas_of(d) + du.max_surge(d))
        changed = annotations.get(du.DESIRED_REPLICAS) != desired or annotations.get(du.MAX_REPLICAS) != ceiling
        annotations[du.DESIRED_REPLICAS] = desired
        annotations[du.MAX_REPLICAS] = ceiling
        return changed

    # -- scaling ---------------------------------------------------------------

    def _new_rs_replicas(self, d: JsonObject, all_rs: list[JsonObject], new_rs: JsonObject) -> int:
        """``NewRSNewReplicas``: how far the new ReplicaSet may grow now."""
        desired = du.replicas_of(d)
        if not du.is_rolling(d):
            return desired
        current = du.spec_total(all_rs)
        ceiling = desired + du.max_surge(d)
        if current >= ceiling:
            return du.replicas_of(new_rs)
        return du.replicas_of(new_rs) + min(ceiling - current, desired - du.replicas_of(new_rs))

    def _scale(self, cluster: str, rs: JsonObject, size: int, d: JsonObject) -> tuple[JsonObject, bool]:
        """``scaleReplicaSet``: set the size and the replica annotations."""
        updated = deep_copy(rs)
        resized = du.replicas_of(rs) != size
        updated["spec"]["replicas"] = size
        annotated = self._set_replicas_annotations(d, updated)
        if not (resized or annotated):
            return rs, False
        return self.store.update(cluster, REPLICASETS, updated), resized

    # -- rolling update ----------------------------------------------------------

    def _rollout_rolling(self, cluster: str, d: JsonObject) -> bool:
        d, new_rs, old, acted = self._get_all(cluster, d, create=True)
        assert new_rs is not None, "create=True always yields a new ReplicaSet"
        family = [*old, new_rs]
        if self._reconcile_new(cluster, d, family, new_rs) or self._reconcile_old(cluster, d, family, old, new_rs):
            acted = True
        elif du.is_complete(d, d.get("status") or {}):
            self._cleanup(cluster, d, old)
        self._sync_rollout_status(cluster, d)
        return acted

    def _reconcile_new(self, cluster: str, d: JsonObject, all_rs: list[JsonObject], new_rs: JsonObject) -> bool:
        desired = du.replicas_of(d)
        size = du.replicas_of(new_rs)
        if size == desired:
            return False
        target = desired if size > desired else self._new_rs_replicas(d, all_rs, new_rs)
        return self._scale(cluster, new_rs, target, d)[1]

    def _reconcile_old(self, cluster: str, d: JsonObject, all_rs: list[JsonObject], old: list[JsonObject], new_rs: JsonObject) -> bool:
        old_active = du.active(old)
        if du.spec_total(old_active) == 0:
            return False
        min_available = du.replicas_of(d) - du.max_unavailable(d)
        new_unavailable = du.replicas_of(new_rs) - int(dig(new_rs, "status", "availableReplicas") or 0)
        budget = du.spec_total(all_rs) - min_available - new_unavailable
        if budget <= 0:
            return False
        old_active, cleaned = self._cleanup_unhealthy(cluster, d, old_active, budget)
        scaled = self._scale_down_old(cluster, d, [*old_active, new_rs], old_active)
        return cleaned + scaled > 0

    def _cleanup_unhealthy(self, cluster: str, d: JsonObject, old: list[JsonObject], budget: int) -> tuple[list[JsonObject], int]:
        """Scale down old pods that are not available first; they cost nothing."""
        total = 0
        result: list[JsonObject] = []
        for rs in sorted(old, key=self.store.creation_rank):
            size = du.replicas_of(rs)
            available = int(dig(rs, "status", "availableReplicas") or 0)
            if total >= budget or size in (0, available):
                result.append(rs)
                continue
            step = min(budget - total, size - available)
            result.append(self._scale(cluster, rs, size - step, d)[0])
            total += step
        return result, total

    def _scale_down_old(self, cluster: str, d: JsonObject, all_rs: list[JsonObject], old: list[JsonObject]) -> int:
        min_available = du.replicas_of(d) - du.max_unavailable(d)
        available = du.status_total(all_rs, "availableReplicas")
        if available <= min_available:
            return 0
        budget = available - min_available
        done = 0
        for rs in sorted(old, key=self.store.creation_rank):
            if done >= budget:
                break
            size = du.replicas_of(rs)
            if size == 0:
                continue
            step = min(size, budget - done)
            self._scale(cluster, rs, size - step, d)
            done += step
        return done

    # -- recreate ------------------------------------------------------------------

    def _rollout_recreate(self, cluster: str, d: JsonObject) -> bool:
        d, new_rs, old, _ = self._get_all(cluster, d, create=False)
        acted = False
        for rs in du.active(old):
            acted = self._scale(cluster, rs, 0, d)[1] or acted
        if acted or self._old_pods_running(cluster, old):
            self._sync_rollout_status(cluster, d)
            return acted
        if new_rs is None:
            d, new_rs, old, _ = self._get_all(cluster, d, create=True)
            acted = True
        assert new_rs is not None, "create=True always yields a new ReplicaSet"
        if du.replicas_of(new_rs) != du.replicas_of(d):
            acted = self._scale(cluster, new_rs, du.replicas_of(d), d)[1] or acted
        if du.is_complete(d, d.get("status") or {}):
            self._cleanup(cluster, d, old)
        self._sync_rollout_status(cluster, d)
        return acted

    def _old_pods_running(self, cluster: str, old: list[JsonObject]) -> bool:
        uids = {rs["metadata"]["uid"] for rs in old}
        return any(du.owned_by(pod, uid) for pod in self.store.list(cluster, PODS) for uid in uids)

    # -- scaling events and paused deployments ------------------------------------

    def _is_scaling_event(self, cluster: str, d: JsonObject) -> bool:
        _, new_rs, old, _ = self._get_all(cluster, d, create=False)
        desired = str(du.replicas_of(d))
        for rs in du.active([*old, *([new_rs] if new_rs else [])]):
            annotated = dig(rs, "metadata", "annotations", du.DESIRED_REPLICAS)
            if annotated is not None and annotated != desired:
                return True
        return False

    def _sync_scale_only(self, cluster: str, d: JsonObject) -> bool:
        """``dc.sync``: scale without rolling out, then refresh status."""
        d, new_rs, old, _ = self._get_all(cluster, d, create=False)
        acted = self._proportional_scale(cluster, d, new_rs, old)
        if dig(d, "spec", "paused"):
            self._cleanup(cluster, d, old)
        self._sync_status_only(cluster, d)
        return acted

    def _find_active_or_latest(self, new_rs: JsonObject | None, old: list[JsonObject]) -> JsonObject | None:
        if new_rs is None and not old:
            return None
        newest_first = sorted(old, key=self.store.creation_rank, reverse=True)
        candidates = du.active([*newest_first, *([new_rs] if new_rs else [])])
        if not candidates:
            return new_rs if new_rs is not None else newest_first[0]
        return candidates[0] if len(candidates) == 1 else None

    def _proportional_scale(self, cluster: str, d: JsonObject, new_rs: JsonObject | None, old: list[JsonObject]) -> bool:
        desired = du.replicas_of(d)
        only = self._find_active_or_latest(new_rs, old)
        if only is not None:
            return False if du.replicas_of(only) == desired else self._scale(cluster, only, desired, d)[1]
        if new_rs is not None and self._is_saturated(d, new_rs):
            return any([self._scale(cluster, rs, 0, d)[1] for rs in du.active(old)])
        if not du.is_rolling(d):
            return False
        sizes = self._proportional_sizes(d, du.active([*old, *([new_rs] if new_rs else [])]))
        acted = False
        for rs, size in sizes:
            acted = self._scale(cluster, rs, size, d)[1] or acted
        return acted

    def _is_saturated(self, d: JsonObject, rs: JsonObject) -> bool:
        desired = du.replicas_of(d)
        annotated = dig(rs, "metadata", "annotations", du.DESIRED_REPLICAS)
        return du.replicas_of(rs) == desired and annotated == str(desired) and int(dig(rs, "status", "availableReplicas") or 0) == desired

    def _proportional_sizes(self, d: JsonObject, replica_sets: list[JsonObject]) -> list[tuple[JsonObject, int]]:
        """Spread a size change over active ReplicaSets by their share."""
        desired = du.replicas_of(d)
        allowed = desired + du.max_surge(d) if desired > 0 else 0
        to_add = allowed - du.spec_total(replica_sets)
        newest_first = sorted(replica_sets, key=self.store.creation_rank, reverse=True)
        order = newest_first if to_add > 0 else newest_first[::-1]
        order = sorted(order, key=du.replicas_of, reverse=True)
        added = 0
        sizes: list[tuple[JsonObject, int]] = []
        for rs in order:
            share = 0
            if to_add != 0:
                annotated = dig(rs, "metadata", "annotations", du.MAX_REPLICAS)
                base = int(annotated) if annotated else int(dig(d, "status", "replicas") or 0)
                target = math.ceil(du.replicas_of(rs) * allowed / base) if base else 0
                fraction = target - du.replicas_of(rs) if desired else -du.replicas_of(rs)
                left = to_add - added
                share = min(fraction, left) if to_add > 0 else max(fraction, left)
                added += share
            sizes.append((rs, du.replicas_of(rs) + share))
        if sizes and to_add - added:
            rs, size = sizes[0]
            sizes[0] = (rs, max(size + to_add - added, 0))
        return sizes

    def _check_paused_conditions(self, cluster: str, d: JsonObject) -> JsonObject:
        if not du.has_progress_deadline(d):
            return d
        status = child(d, "status")
        condition = du.get_condition(status, "Progressing")
        if condition is not None and condition.get("reason") == du.TIMED_OUT:
            return d
        paused_recorded = condition is not None and condition.get("reason") == du.PAUSED
        now = self.store.clock.now()
        if dig(d, "spec", "paused") and not paused_recorded:
            du.set_condition(status, du.new_condition("Progressing", "Unknown", du.PAUSED, "Deployment is paused", now))
        elif not dig(d, "spec", "paused") and paused_recorded:
            du.set_condition(status, du.new_condition("Progressing", "Unknown", du.RESUMED, "Deployment is resumed", now))
        else:
            return d
        return self._write(cluster, d)

    # -- cleanup and status ----------------------------------------------------------

    def _cleanup(self, cluster: str, d: JsonObject, old: list[JsonObject]) -> None:
        """Delete the oldest revisions beyond ``revisionHistoryLimit`` (only empty ones)."""
        limit = dig(d, "spec", "revisionHistoryLimit")
        if not isinstance(limit, int):
            return
        excess = len(old) - limit
        if excess <= 0:
            return
        for rs in sorted(old, key=du.revision)[:excess]:
            status = rs.get("status") or {}
            stale = int(rs["metadata"].get("generation", 1)) > int(status.get("observedGeneration", 0))
            if int(status.get("replicas", 0)) or du.replicas_of(rs) or stale:
                continue
            self.store.delete(cluster, REPLICASETS, rs["metadata"]["namespace"], rs["metadata"]["name"])

    def _sync_status_only(self, cluster: str, d: JsonObject) -> None:
        d = self._fresh(cluster, d)
        rs_list = self.owned_replicasets(cluster, d)
        new_status = du.calculate_status(d, rs_list, self._find_new(d, rs_list), self.store.clock.now())
        self._store_status(cluster, d, new_status)

    def _sync_rollout_status(self, cluster: str, d: JsonObject) -> None:
        """``syncRolloutStatus``: counters plus the Progressing condition."""
        d = self._fresh(cluster, d)
        rs_list = self.owned_replicasets(cluster, d)
        new_rs = self._find_new(d, rs_list)
        new_status = du.calculate_status(d, rs_list, new_rs, self.store.clock.now())
        if not du.has_progress_deadline(d):
            du.remove_condition(new_status, "Progressing")
        current = du.get_condition(d.get("status") or {}, "Progressing")
        already_complete = (
            int(new_status.get("replicas", 0)) == int(new_status.get("updatedReplicas", 0))
            and current is not None
            and current.get("reason") == du.NEW_RS_AVAILABLE
        )
        if du.has_progress_deadline(d) and not already_complete:
            self._update_progressing(d, new_status, new_rs, current)
        self._store_status(cluster, d, new_status)

    def _update_progressing(self, d: JsonObject, status: JsonObject, new_rs: JsonObject | None, current: JsonObject | None) -> None:
        subject = f'ReplicaSet "{new_rs["metadata"]["name"]}"' if new_rs else f'Deployment "{d["metadata"]["name"]}"'
        now = self.store.clock.now()
        if du.is_complete(d, status):
            message = f"{subject} has successfully progressed."
            du.set_condition(status, du.new_condition("Progressing", "True", du.NEW_RS_AVAILABLE, message, now))
        elif du.is_progressing(d, status):
            condition = du.new_condition("Progressing", "True", du.RS_UPDATED, f"{subject} is progressing.", now)
            if current is not None:
                if current.get("status") == "True":
                    condition["lastTransitionTime"] = current["lastTransitionTime"]
                du.remove_condition(status, "Progressing")
            du.set_condition(status, condition)
        elif du.is_timed_out(d, status, now):
            message = f"{subject} has timed out progressing."
            du.set_condition(status, du.new_condition("Progressing", "False", du.TIMED_OUT, message, now))

    def _store_status(self, cluster: str, d: JsonObject, new_status: JsonObject) -> None:
        if json_equal(d.get("status") or {}, new_status):
            return
        updated = deep_copy(d)
        updated["status"] = new_status
        self._write(cluster, updated)


class ControllerManager:
    """Runs the simulated controllers in deterministic ticks."""

    def __init__(
        self,
        store: ObjectStore,
        *,
        seconds_per_tick: float = 10.0,
        image_health: ImageHealth = default_image_health,
        crash_interval_ticks: int = 3,
    ) -> None:
        self.store = store
        self.seconds_per_tick = seconds_per_tick
        self.pods = PodSimulator(store, image_health=image_health, crash_interval_ticks=crash_interval_ticks)
        self.deployments = DeploymentController(store)
        self.jobs = JobController(store)
        self.ticks = 0
        self.after_tick: list[Callable[[], None]] = []
        """Other simulated controllers (fakes/kubernetes/flux.py) that run after each tick, outside the lock."""

    def tick(self) -> None:
        """Advance simulated time by one tick and reconcile every cluster."""
        with self.store.lock:
            self.ticks += 1
            self.store.clock.advance(self.seconds_per_tick)
            for cluster in self.store.cluster_names():
                self._tick_cluster(cluster)
        for hook in self.after_tick:
            hook()

    def _tick_cluster(self, cluster: str) -> None:
        self._collect_garbage(cluster)
        self.pods.step(cluster, self.ticks)
        for rs in self.store.list(cluster, REPLICASETS):
            self.pods.reconcile(cluster, rs, self.ticks)
        for deployment in self.store.list(cluster, DEPLOYMENTS):
            self._sync_deployment(cluster, deployment["metadata"]["namespace"], deployment["metadata"]["name"])
        self.jobs.step(cluster)

    def _sync_deployment(self, cluster: str, namespace: str, name: str) -> None:
        for _ in range(_MAX_PASSES):
            deployment = self.store.get(cluster, DEPLOYMENTS, namespace, name)
            if deployment is None:
                return
            acted = self.deployments.sync(cluster, deployment)
            for rs in self.deployments.owned_replicasets(cluster, deployment):
                self.pods.reconcile(cluster, rs, self.ticks)
            if not acted:
                return

    def materialize(self, cluster: str, namespace: str, name: str) -> None:
        """Bring a new Deployment straight to "rolled out" without moving time.

        Pods are aged past their start-up so they are Running and Ready now;
        the final status is computed by the normal sync, so conditions read
        exactly as after a real first rollout.
        """
        with self.store.lock:
            for _ in range(_MAX_PASSES):
                deployment = self.store.get(cluster, DEPLOYMENTS, namespace, name)
                if deployment is None:
                    return
                acted = self.deployments.sync(cluster, deployment)
                for rs in self.deployments.owned_replicasets(cluster, deployment):
                    self.pods.reconcile(cluster, rs, self.ticks)
                    for pod in self.pods.owned_pods(cluster, rs):
                        self.pods.mature(pod, 10 * self.pods.crash_interval_ticks)
                self.pods.step(cluster, self.ticks)
                for rs in self.deployments.owned_replicasets(cluster, deployment):
                    self.pods.reconcile(cluster, rs, self.ticks)
                if not acted:
                    return

    def _collect_garbage(self, cluster: str) -> None:
        """Delete ReplicaSets and Pods whose controller owner (a Deployment, a ReplicaSet or a Job) is gone."""
        for resource, owner_resources in ((REPLICASETS, (DEPLOYMENTS,)), (PODS, (REPLICASETS, JOBS))):
            owners = {o["metadata"]["uid"] for owner in owner_resources for o in self.store.list(cluster, owner)}
            for obj in self.store.list(cluster, resource):
                refs = [r for r in dig(obj, "metadata", "ownerReferences") or [] if r.get("controller")]
                if refs and all(r.get("uid") not in owners for r in refs):
                    meta = obj["metadata"]
                    self.store.delete(cluster, resource, meta["namespace"], meta["name"])
                    logger.debug("cluster %s: garbage-collected %s %s/%s", cluster, resource, meta["namespace"], meta["name"])
