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
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import yaml

from bot.backends.kubernetes.bulk_json import loads_paused
from bot.backends.kubernetes.errors import ChangedSinceRead, KubeRef, config_error, kube_errors
from bot.backends.kubernetes.impersonation import Impersonation, RepeatedHeaders, forbidden_text
from bot.catalog.config import EksCluster, KubernetesAccess, KubernetesTarget
from bot.errors import ActionFailed

if TYPE_CHECKING:
    # The generated client, urllib3 (and boto3, for EKS) are imported when a cluster is first reached,
    # not when an action module is: `opsbot validate` loads every action's arguments and
    # never calls a cluster (docs/benchmarks.md, start-up).
    import urllib3
    from kubernetes import client as k8s

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
    import urllib3

    return urllib3.Retry(total=2, connect=2, read=0, status=0, redirect=0, other=0, respect_retry_after_header=False)


def _new_configuration() -> k8s.Configuration:
    """A fresh ``Configuration`` per cluster, never the process-wide default."""
    from kubernetes import client as k8s

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
    """The calls opsbot makes against one cluster, each returning JSON-shaped dicts.

    ``impersonating`` gives a view that shares the connection pool and sends every call as the
    requester (``Impersonate-*`` headers); the plain object acts as opsbot (health, digests).
    """

    def __init__(self, cluster: str, api_client: k8s.ApiClient, request_timeout: float, impersonation: Impersonation | None = None) -> None:
        self.cluster = cluster
        self.impersonation = impersonation
        self._api_client = api_client
        from kubernetes import client as k8s

        self._apps = k8s.AppsV1Api(api_client)
        self._core = k8s.CoreV1Api(api_client)
        self._batch = k8s.BatchV1Api(api_client)
        self._authorization = k8s.AuthorizationV1Api(api_client)
        self._timeout = request_timeout

    def impersonating(self, impersonation: Impersonation | None) -> ClusterApi:
        """This cluster, called as ``impersonation`` (None: as opsbot itself)."""
        if impersonation is None:
            return self
        return ClusterApi(self.cluster, self._api_client, self._timeout, impersonation)

    @property
    def api_client(self) -> k8s.ApiClient:
        """The cluster's generated client, for backends that call other API groups (Flux objects in bot.backends.gitops)."""
        return self._api_client

    def ref(self, namespace: str, name: str | None = None, kind: str = "deployment") -> KubeRef:
        return KubeRef(cluster=self.cluster, namespace=namespace, kind=kind, name=name)

    def read_deployment(self, namespace: str, name: str) -> dict[str, Any]:
        with self._calling("read", self.ref(namespace, name), "get", "deployments"):
            result = self._apps.read_namespaced_deployment(name, namespace, _request_timeout=self._timeout, _headers=self._headers())
        return self._as_dict(result)

    def patch_deployment(
        self,
        namespace: str,
        name: str,
        body: dict[str, Any] | list[dict[str, Any]],
        *,
        patch_type: PatchType,
        dry_run: bool = False,
        resource_version: str | None = None,
    ) -> dict[str, Any]:
        """PATCH a Deployment; ``dry_run`` asks the server to validate and return, not store.

        ``resource_version`` (a strategic or merge patch only) makes it a write against that read:
        the API server refuses it with 409 if the Deployment changed since (``ChangedSinceRead``),
        the optimistic concurrency of ``kubectl apply`` and ``kubectl edit``.

        The content type is always given: v37 defaults to JSON patch, which a real
        server rejects for an object body.
        """
        ref = self.ref(namespace, name)
        if resource_version is not None:
            if not isinstance(body, dict) or patch_type == "json":
                raise ValueError("a resourceVersion precondition needs a strategic or merge patch")
            body = {**body, "metadata": {**(body.get("metadata") or {}), "resourceVersion": resource_version}}
        with self._calling("patch", ref, "patch", "deployments"):
            from kubernetes.client.exceptions import ApiException  # already loaded: a call is being made

            try:
                result = self._apps.patch_namespaced_deployment(
                    name,
                    namespace,
                    body,
                    dry_run="All" if dry_run else None,
                    _content_type=_CONTENT_TYPES[patch_type],
                    _request_timeout=self._timeout,
                    _headers=self._headers(),
                )
            except ApiException as exc:
                if exc.status == 409 and resource_version is not None:
                    raise ChangedSinceRead(f"{ref.describe()} changed since it was read (resourceVersion {resource_version})") from None
                raise
        return self._as_dict(result)

    def patch_scale(self, namespace: str, name: str, replicas: int, *, dry_run: bool = False) -> dict[str, Any]:
        """Set replicas through the ``/scale`` subresource, with a merge patch as ``kubectl scale`` does."""
        with self._calling("scale", self.ref(namespace, name), "patch", "deployments/scale"):
            result = self._apps.patch_namespaced_deployment_scale(
                name,
                namespace,
                {"spec": {"replicas": replicas}},
                dry_run="All" if dry_run else None,
                _content_type=_CONTENT_TYPES["merge"],
                _request_timeout=self._timeout,
                _headers=self._headers(),
            )
        return self._as_dict(result)

    def list_deployments(self, namespace: str) -> list[dict[str, Any]]:
        with self._calling("list", self.ref(namespace), "list", "deployments"):
            return self._list_pages(self._apps.list_namespaced_deployment, namespace, None)

    def list_replicasets(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        with self._calling("list", self.ref(namespace, kind="replicaset"), "list", "replicasets"):
            return self._list_pages(self._apps.list_namespaced_replica_set, namespace, label_selector or None)

    def list_pods(self, namespace: str, label_selector: str | None = None) -> list[dict[str, Any]]:
        with self._calling("list", self.ref(namespace, kind="pod"), "list", "pods"):
            return self._list_pages(self._core.list_namespaced_pod, namespace, label_selector or None)

    def read_cronjob(self, namespace: str, name: str) -> dict[str, Any]:
        with self._calling("read", self.ref(namespace, name, kind="cronjob"), "get", "cronjobs"):
            response = self._batch.read_namespaced_cron_job(name, namespace, **self._raw())
        return self._json(response)

    def create_job(self, namespace: str, body: Any, *, dry_run: bool = False) -> dict[str, Any]:
        """POST a Job; ``dry_run`` asks the server to default and validate it without storing it.

        A name already taken is a permanent failure (409 ``AlreadyExists``), not the temporary
        conflict a 409 on an update is: sending the same create again cannot succeed.
        """
        name = str(body.get("metadata", {}).get("name") or body.get("metadata", {}).get("generateName") or "")
        ref = self.ref(namespace, name, kind="job")
        with self._calling("create", ref, "create", "jobs"):
            from kubernetes.client.exceptions import ApiException

            try:
                response = self._batch.create_namespaced_job(namespace, body, dry_run="All" if dry_run else None, **self._raw())
            except ApiException as exc:
                if exc.status == 409:
                    raise ActionFailed(f"a job named {name} already exists in namespace {namespace} of cluster {self.cluster}") from None
                raise
        return self._json(response)

    def read_job(self, namespace: str, name: str) -> dict[str, Any]:
        with self._calling("read", self.ref(namespace, name, kind="job"), "get", "jobs"):
            response = self._batch.read_namespaced_job(name, namespace, **self._raw())
        return self._json(response)

    def delete_job(self, namespace: str, name: str) -> None:
        """Delete a Job and its pods (``propagationPolicy: Background``; the API's default for Jobs would orphan the pods)."""
        with self._calling("delete", self.ref(namespace, name, kind="job"), "delete", "jobs"):
            self._batch.delete_namespaced_job(name, namespace, propagation_policy="Background", **self._raw())

    def read_pod_log(self, namespace: str, name: str, *, tail_lines: int, container: str | None = None) -> str:
        """The last ``tail_lines`` lines the pod's container printed (``kubectl logs --tail``)."""
        with self._calling("read the log of", self.ref(namespace, name, kind="pod"), "get", "pods/log"):
            response: Any = self._core.read_namespaced_pod_log(name, namespace, container=container, tail_lines=tail_lines, **self._raw())
        data = response.data
        return data.decode("utf-8", errors="replace") if isinstance(data, bytes) else str(data)

    def _raw(self) -> dict[str, Any]:
        """Call options for a plain JSON answer (no generated models) with this view's timeout and headers."""
        return {"_request_timeout": self._timeout, "_preload_content": False, "_headers": self._headers()}

    @staticmethod
    def _json(response: Any) -> dict[str, Any]:
        parsed = json.loads(response.data or b"{}")
        return parsed if isinstance(parsed, dict) else {}

    def _list_pages(self, call: Callable[..., Any], namespace: str, label_selector: str | None) -> list[dict[str, Any]]:
        """Every item of a list, read ``LIST_PAGE_SIZE`` at a time (``limit``/``continue``, as kubectl does).

        The raw JSON is parsed directly (``_preload_content=False``): building the generated
        client's models and converting them back to dicts cost most of a big digest's time (see
        docs/benchmarks.md), and nothing here needs the models; it is parsed with the garbage
        collector paused (``bulk_json``). Pages keep one response in memory at a time, however big
        the namespace.
        """
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            response = call(
                namespace, label_selector=label_selector, limit=LIST_PAGE_SIZE, _continue=token,
                _request_timeout=self._timeout, _preload_content=False, _headers=self._headers(),
            )  # fmt: skip
            page = loads_paused(response.data)
            items.extend(item for item in page.get("items") or [] if isinstance(item, dict))
            token = (page.get("metadata") or {}).get("continue") or None
            if token is None:
                return items

    def access_review(self, check: AccessCheck) -> AccessAnswer:
        """Ask the cluster (SelfSubjectAccessReview, sent as this view's identity) whether ``check`` is allowed."""
        body: Any = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": check.attributes()},
        }
        with kube_errors("review access in", self.ref(check.namespace, kind="selfsubjectaccessreview")):
            result = self._authorization.create_self_subject_access_review(body, _request_timeout=self._timeout, _headers=self._headers())
        status = self._as_dict(result).get("status") or {}
        return AccessAnswer(check=check, allowed=bool(status.get("allowed")), reason=str(status.get("reason") or ""))

    def close(self) -> None:
        """Release this cluster's connection pool."""
        self._api_client.close()  # type: ignore[no-untyped-call]

    def _headers(self) -> dict[str, Any] | None:
        # A fresh dict per call: the generated client adds its own headers to the one it is given.
        return self.impersonation.headers() if self.impersonation is not None else None

    def _calling(self, verb: str, ref: KubeRef, rbac_verb: str, resource: str) -> AbstractContextManager[None]:
        impersonation = self.impersonation
        if impersonation is None:
            return kube_errors(verb, ref)

        def forbidden(reason: str | None) -> str:
            return forbidden_text(impersonation, rbac_verb, resource, ref.describe(), ref.namespace, reason)

        return kube_errors(verb, ref, forbidden=forbidden)

    def _as_dict(self, model: Any) -> dict[str, Any]:
        data = self._api_client.sanitize_for_serialization(model)  # type: ignore[no-untyped-call]
        return data if isinstance(data, dict) else {}


@dataclass(frozen=True)
class AccessCheck:
    """One question for SelfSubjectAccessReview: may I ``verb`` ``group/resource[/subresource]`` in ``namespace``?"""

    verb: str
    resource: str
    namespace: str
    group: str = "apps"
    subresource: str = ""
    name: str = ""

    def attributes(self) -> dict[str, str]:
        attributes = {"verb": self.verb, "group": self.group, "resource": self.resource, "namespace": self.namespace}
        if self.subresource:
            attributes["subresource"] = self.subresource
        if self.name:
            attributes["name"] = self.name
        return attributes

    def describe(self) -> str:
        resource = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        named = f" {self.name}" if self.name else ""
        return f"{self.verb} {resource}{named} in {self.namespace}"


@dataclass(frozen=True)
class AccessAnswer:
    check: AccessCheck
    allowed: bool
    reason: str


class KubeClients:
    """A thread-safe cache of ``ClusterApi`` per context, built from ``KubernetesAccess``.

    A context of ``None`` means the in-cluster service account when ``in_cluster`` is
    set, and otherwise the kubeconfig's current context. A key ``eks:<name>`` (a target's
    ``eks:``) or a context listed in ``kubernetes.eks`` is reached as an EKS cluster
    (``eks.py``): no kubeconfig user, no exec plugin.
    """

    def __init__(self, access: KubernetesAccess, eks_targets: Mapping[str, EksCluster] | None = None) -> None:
        self._access = access
        self._lock = threading.Lock()
        self._clusters: dict[str | None, ClusterApi] = {}
        self._eks: dict[str, EksCluster] = {**access.eks, **(eks_targets or {})}

    @property
    def request_timeout(self) -> float:
        return self._access.request_timeout.total_seconds()

    def for_target(self, target: KubernetesTarget) -> ClusterApi:
        key = target.cluster_key
        if target.eks is not None and key is not None:
            with self._lock:
                self._eks.setdefault(key, target.eks)
        return self.cluster(key)

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
        eks = self._eks.get(context) if context is not None else None
        if eks is not None:
            from kubernetes import client as k8s

            from bot.backends.kubernetes.eks import eks_configuration

            return _with_repeated_headers(k8s.ApiClient(eks_configuration(eks, _new_configuration())))
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
    from kubernetes import config as k8s_config
    from kubernetes.config.config_exception import ConfigException

    source = path or "the default kubeconfig"
    try:
        api_client: k8s.ApiClient = k8s_config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=path, context=context, persist_config=False, client_configuration=_new_configuration()
        )
    except (ConfigException, OSError, yaml.YAMLError) as exc:
        raise config_error(exc, cluster_name(context), source) from exc
    return _with_repeated_headers(api_client)


def _in_cluster_client() -> k8s.ApiClient:
    """The pod's service account, loaded into a fresh ``Configuration`` (never the default)."""
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config
    from kubernetes.config.config_exception import ConfigException

    configuration = _new_configuration()
    try:
        k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except (ConfigException, OSError) as exc:
        raise config_error(exc, IN_CLUSTER, "the pod's service account") from exc
    return _with_repeated_headers(k8s.ApiClient(configuration))


def _with_repeated_headers(api_client: k8s.ApiClient) -> k8s.ApiClient:
    """Let a list-valued header (``Impersonate-Group``) go out as repeated lines (see ``impersonation.py``)."""
    api_client.rest_client = RepeatedHeaders(api_client.rest_client)  # type: ignore[assignment]
    return api_client
