"""API clients per cluster, and the handful of calls opsbot makes, returning plain dicts.

One ``ApiClient`` per kubeconfig context (or one for in-cluster), created on first use
and cached: opsbot talks to several clusters from several threads, and
``load_kube_config`` would rewrite the process-wide default ``Configuration`` that other
code (and other clusters) share. Each client gets its own fresh ``Configuration``.

``ClusterApi`` is the only place that calls the generated client. Every call carries the
configured request timeout, runs inside ``kube_errors`` (so failures become opsbot errors
naming cluster/namespace/object) and converts the generated model to the JSON-shaped dict
the API server sent (``sanitize_for_serialization``), which is what ``rollout.py`` and the
actions work on.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from typing import Any, Literal

import urllib3
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.config.config_exception import ConfigException

from bot.backends.kubernetes.errors import KubeRef, config_error, kube_errors
from bot.catalog.config import KubernetesAccess, KubernetesTarget

IN_CLUSTER = "in-cluster"
"""The cluster name used in messages for a target without a kubeconfig context."""

PatchType = Literal["strategic", "merge", "json"]
_CONTENT_TYPES: dict[PatchType, str] = {
    "strategic": "application/strategic-merge-patch+json",
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
}


LIST_PAGE_SIZE = 500
"""Items per list page: kubectl's default chunk size."""
CONNECTION_POOL_SIZE = 32


def _retries() -> urllib3.Retry:
    """Retry only failures to connect, which never reached the server.

    urllib3's default (3 retries of anything) would re-send a request that timed out
    after reaching the server, multiplying the configured request timeout by four.
    A 429/503 with ``Retry-After`` is handed back rather than slept on, so it becomes a
    ``TemporaryActionError`` and ``wait_rollout`` (or the runner) decides what to do.
    """
    return urllib3.Retry(total=2, connect=2, read=0, status=0, redirect=0, other=0, respect_retry_after_header=False)


def _new_configuration() -> k8s.Configuration:
    """A fresh ``Configuration`` per cluster, never the process-wide default."""
    configuration = k8s.Configuration()
    configuration.retries = _retries()
    # The default (5 × CPU count) is smaller than opsbot's thread count: extra connections were
    # opened and thrown away under load ("Connection pool is full, discarding connection").
    configuration.connection_pool_maxsize = CONNECTION_POOL_SIZE
    return configuration


def cluster_name(context: str | None) -> str:
    """How messages name a cluster: the kubeconfig context, or ``in-cluster``."""
    return context or IN_CLUSTER


class ClusterApi:
    """The calls opsbot makes against one cluster, each returning JSON-shaped dicts."""

    def __init__(self, cluster: str, api_client: k8s.ApiClient, request_timeout: float) -> None:
        self.cluster = cluster
        self._api_client = api_client
        self._apps = k8s.AppsV1Api(api_client)
        self._core = k8s.CoreV1Api(api_client)
        self._timeout = request_timeout

    def ref(self, namespace: str, name: str | None = None, kind: str = "deployment") -> KubeRef:
        return KubeRef(cluster=self.cluster, namespace=namespace, kind=kind, name=name)

    def read_deployment(self, namespace: str, name: str) -> dict[str, Any]:
        with kube_errors("read", self.ref(namespace, name)):
            result = self._apps.read_namespaced_deployment(name, namespace, _request_timeout=self._timeout)
        return self._as_dict(result)

    def patch_deployment(
        self,
        namespace: str,
        name: str,
        body: dict[str, Any] | list[dict[str, Any]],
        *,
        patch_type: PatchType,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """PATCH a Deployment; ``dry_run`` asks the server to validate and return, not store.

        The content type is always given: v37 defaults to JSON patch, which a real
        server rejects for an object body.
        """
        with kube_errors("patch", self.ref(namespace, name)):
            result = self._apps.patch_namespaced_deployment(
                name,
                namespace,
                body,
                dry_run="All" if dry_run else None,
                _content_type=_CONTENT_TYPES[patch_type],
                _request_timeout=self._timeout,
            )
        return self._as_dict(result)

    def patch_scale(self, namespace: str, name: str, replicas: int, *, dry_run: bool = False) -> dict[str, Any]:
        """Set replicas through the ``/scale`` subresource, with a merge patch as ``kubectl scale`` does."""
        with kube_errors("scale", self.ref(namespace, name)):
            result = self._apps.patch_namespaced_deployment_scale(
                name,
                namespace,
                {"spec": {"replicas": replicas}},
                dry_run="All" if dry_run else None,
                _content_type=_CONTENT_TYPES["merge"],
                _request_timeout=self._timeout,
            )
        return self._as_dict(result)

    def list_deployments(self, namespace: str) -> list[dict[str, Any]]:
        with kube_errors("list", self.ref(namespace)):
            return self._list_pages(self._apps.list_namespaced_deployment, namespace, None)

    def list_replicasets(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        with kube_errors("list", self.ref(namespace, kind="replicaset")):
            return self._list_pages(self._apps.list_namespaced_replica_set, namespace, label_selector or None)

    def list_pods(self, namespace: str, label_selector: str | None = None) -> list[dict[str, Any]]:
        with kube_errors("list", self.ref(namespace, kind="pod")):
            return self._list_pages(self._core.list_namespaced_pod, namespace, label_selector or None)

    def _list_pages(self, call: Callable[..., Any], namespace: str, label_selector: str | None) -> list[dict[str, Any]]:
        """Every item of a list, read ``LIST_PAGE_SIZE`` at a time (``limit``/``continue``, as kubectl does).

        The raw JSON is parsed directly (``_preload_content=False``): building the generated
        client's models and converting them back to dicts cost most of a big digest's time (see
        docs/benchmarks.md), and nothing here needs the models. Pages keep one response in memory
        at a time, however big the namespace.
        """
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            response = call(
                namespace, label_selector=label_selector, limit=LIST_PAGE_SIZE, _continue=token,
                _request_timeout=self._timeout, _preload_content=False,
            )  # fmt: skip
            page = json.loads(response.data)
            items.extend(item for item in page.get("items") or [] if isinstance(item, dict))
            token = (page.get("metadata") or {}).get("continue") or None
            if token is None:
                return items

    def close(self) -> None:
        """Release this cluster's connection pool."""
        self._api_client.close()  # type: ignore[no-untyped-call]

    def _as_dict(self, model: Any) -> dict[str, Any]:
        data = self._api_client.sanitize_for_serialization(model)  # type: ignore[no-untyped-call]
        return data if isinstance(data, dict) else {}


class KubeClients:
    """A thread-safe cache of ``ClusterApi`` per context, built from ``KubernetesAccess``.

    A context of ``None`` means the in-cluster service account when ``in_cluster`` is
    set, and otherwise the kubeconfig's current context.
    """

    def __init__(self, access: KubernetesAccess) -> None:
        self._access = access
        self._lock = threading.Lock()
        self._clusters: dict[str | None, ClusterApi] = {}

    @property
    def request_timeout(self) -> float:
        return self._access.request_timeout.total_seconds()

    def for_target(self, target: KubernetesTarget) -> ClusterApi:
        return self.cluster(target.context)

    def cluster(self, context: str | None) -> ClusterApi:
        with self._lock:
            api = self._clusters.get(context)
            if api is None:
                api = ClusterApi(cluster_name(context), self._new_api_client(context), self.request_timeout)
                self._clusters[context] = api
            return api

    def close(self) -> None:
        """Close every connection pool (tests and shutdown)."""
        with self._lock:
            clusters, self._clusters = list(self._clusters.values()), {}
        for api in clusters:
            api.close()

    def _new_api_client(self, context: str | None) -> k8s.ApiClient:
        if context is None and self._access.in_cluster:
            return _in_cluster_client()
        return _kubeconfig_client(self._kubeconfig_path(), context)

    def _kubeconfig_path(self) -> str | None:
        """The configured file, else the client's default (``$KUBECONFIG`` or ``~/.kube/config``)."""
        if self._access.kubeconfig is None:
            return None
        return os.path.expanduser(self._access.kubeconfig)


def _kubeconfig_client(path: str | None, context: str | None) -> k8s.ApiClient:
    """A client for one context; ``persist_config=False`` so refreshed tokens never rewrite the file."""
    source = path or "the default kubeconfig"
    try:
        api_client: k8s.ApiClient = k8s_config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=path, context=context, persist_config=False, client_configuration=_new_configuration()
        )
    except (ConfigException, OSError, yaml.YAMLError) as exc:
        raise config_error(exc, cluster_name(context), source) from exc
    return api_client


def _in_cluster_client() -> k8s.ApiClient:
    """The pod's service account, loaded into a fresh ``Configuration`` (never the default)."""
    configuration = _new_configuration()
    try:
        k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except (ConfigException, OSError) as exc:
        raise config_error(exc, IN_CLUSTER, "the pod's service account") from exc
    return k8s.ApiClient(configuration)
