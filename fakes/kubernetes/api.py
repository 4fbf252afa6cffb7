"""The API front door: authentication, routing, RBAC, and the read paths.

:class:`KubeApi` turns an :class:`ApiRequest` into an :class:`ApiResponse` and
never raises: every failure becomes a ``Status`` body, the way the real
apiserver's filter chain and handlers answer. Authorization runs before any
lookup (a denied caller learns nothing about existence), then reads are
served here and writes are delegated to :mod:`deployment_writes`.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable

from fakes.kubernetes.access_review import is_access_review, review
from fakes.kubernetes.deployment_writes import DeploymentWrites, Mode
from fakes.kubernetes.exchange import ApiRequest, ApiResponse
from fakes.kubernetes.faults import AccessPolicy
from fakes.kubernetes.jobs import BatchApi
from fakes.kubernetes.json_values import JsonObject
from fakes.kubernetes.object_store import PODS, ObjectStore, format_time
from fakes.kubernetes.rbac import Caller, RbacModel
from fakes.kubernetes.routing import DiscoveryRoute, ResourceRoute, discovery_document, parse_path, verb_allowed, verb_for
from fakes.kubernetes.selectors import SelectorError, matches, parse_field_selector, parse_label_selector
from fakes.kubernetes.statuses import (
    ApiError,
    bad_request,
    forbidden_request,
    internal_error,
    method_not_allowed,
    not_found,
    not_found_path,
    unauthorized,
)

logger = logging.getLogger(__name__)

DEFAULT_USER = "system:serviceaccount:opsbot:opsbot"


class KubeApi:
    """Serves the Kubernetes REST API for every fake cluster in ``store``."""

    def __init__(
        self,
        store: ObjectStore,
        policy: AccessPolicy,
        *,
        user: str = DEFAULT_USER,
        token: str | None = None,
        server_address: Callable[[], str] = lambda: "127.0.0.1:0",
        rbac: RbacModel | None = None,
    ) -> None:
        self.store = store
        self.policy = policy
        self.rbac = rbac or RbacModel()
        self.user = user
        self.token = token
        self.server_address = server_address
        self.writes = DeploymentWrites(store)
        self.batch = BatchApi(store)
        self.extensions: list[Callable[[ApiRequest], ApiResponse | None]] = []
        """Extra API groups served by other fake modules (Flux's, in fakes/kubernetes/flux.py); None = not theirs."""

    def handle(self, request: ApiRequest) -> ApiResponse:
        """Answer one request; failures become ``Status`` responses."""
        try:
            with self.store.lock:
                return self._dispatch(request)
        except ApiError as error:
            return ApiResponse(error.code, error.to_status(), error.headers)
        except Exception as error:  # a bug in the fake must still answer like a server
            logger.exception("fake kube-apiserver failed on %s %s", request.method, request.path)
            failure = internal_error(str(error))
            return ApiResponse(failure.code, failure.to_status())

    # -- dispatch --------------------------------------------------------------

    def _dispatch(self, request: ApiRequest) -> ApiResponse:
        self._authenticate(request)
        caller = self.rbac.caller(self.user, request.header_lists())
        if request.cluster is not None and not self.store.has_cluster(request.cluster):
            raise not_found_path()
        if is_access_review(request.path) and request.cluster is not None:
            return review(request, caller, request.cluster, self.rbac, self.policy)
        for extension in self.extensions:
            answer = extension(request)
            if answer is not None:
                return answer
        route = parse_path(request.path)
        if isinstance(route, DiscoveryRoute):
            return self._discovery(request, route)
        if route is None or request.cluster is None:
            raise not_found_path()
        verb = verb_for(request.method, route, request.param("watch") in ("true", "1"))
        if verb is None or not verb_allowed(route, verb) or verb == "watch":
            raise method_not_allowed()
        self._authorize(request.cluster, route, verb, caller)
        return self._serve(request, request.cluster, route, verb)

    def _authenticate(self, request: ApiRequest) -> None:
        if self.token is None:
            return
        if request.header("authorization") != f"Bearer {self.token}":
            raise unauthorized()

    def _authorize(self, cluster: str, route: ResourceRoute, verb: str, caller: Caller) -> None:
        namespace = route.namespace if route.info.namespaced else None
        if route.info.resource == "namespaces":
            namespace = route.name
        # A test's deny rule (``forbid``) refuses whoever asks; impersonated callers also need an RBAC grant.
        if self.policy.is_forbidden(verb, route.rbac_resource, cluster, namespace):
            raise forbidden_request(
                route.info.group_resource,
                route.name or "",
                user=caller.user,
                verb=verb,
                resource_path=route.rbac_resource,
                namespace=namespace,
            )
        if caller.impersonated:
            self.rbac.authorize(caller, cluster, verb, route.info.group_resource, route.rbac_resource, namespace, route.name)

    def _discovery(self, request: ApiRequest, route: DiscoveryRoute) -> ApiResponse:
        if request.method != "GET":
            raise method_not_allowed()
        body = discovery_document(route.document, self.server_address())
        if body is None:
            raise not_found_path()
        return ApiResponse(200, body)

    def _serve(self, request: ApiRequest, cluster: str, route: ResourceRoute, verb: str) -> ApiResponse:
        if verb == "list":
            return self._list(request, cluster, route)
        if route.info.resource == "deployments":
            return self._deployment(request, cluster, route, verb)
        if route.subresource == "log":
            return self.batch.pod_log(cluster, str(route.namespace), str(route.name), request)
        if route.info.group == "batch" and verb == "create":
            return self.batch.create(cluster, str(route.namespace), route.info.resource, request)
        if route.info.group == "batch" and verb == "delete":
            return self.batch.delete(cluster, str(route.namespace), route.info.resource, str(route.name), request)
        if verb == "delete":
            return self._delete_pod(cluster, route)
        return ApiResponse(200, self._get(cluster, route))

    def _deployment(self, request: ApiRequest, cluster: str, route: ResourceRoute, verb: str) -> ApiResponse:
        namespace = str(route.namespace)
        name = route.name
        writes = self.writes
        if verb == "create":
            return writes.create(cluster, namespace, request)
        assert name is not None, "only create and list address the collection"
        if route.subresource == "scale":
            if verb == "get":
                return writes.get_scale(cluster, namespace, name)
            if verb == "update":
                return writes.replace_scale(cluster, namespace, name, request)
            return writes.patch_scale(cluster, namespace, name, request)
        mode: Mode = "status" if route.subresource == "status" else "main"
        if verb == "get":
            return ApiResponse(200, self._get(cluster, route))
        if verb == "update":
            return writes.replace(cluster, namespace, name, request, mode)
        if verb == "patch":
            return writes.patch(cluster, namespace, name, request, mode)
        return writes.delete(cluster, namespace, name, request)

    # -- reads -------------------------------------------------------------------

    def _get(self, cluster: str, route: ResourceRoute) -> JsonObject:
        name = str(route.name)
        if route.info.resource == "namespaces":
            found = self.store.namespace(cluster, name)
        else:
            found = self.store.get(cluster, route.info.resource, str(route.namespace), name)
        if found is None:
            raise not_found(route.info.group_resource, name)
        return _with_type_meta(found, route)

    def _list(self, request: ApiRequest, cluster: str, route: ResourceRoute) -> ApiResponse:
        try:
            labels = parse_label_selector(request.param("labelSelector"))
            fields = parse_field_selector(request.param("fieldSelector"))
        except SelectorError as error:
            raise bad_request(str(error)) from None
        if route.info.resource == "namespaces":
            items = self.store.namespaces(cluster)
        else:
            items = self.store.list(cluster, route.info.resource, route.namespace)
        items = [
            item for item in items if matches(labels, (item.get("metadata") or {}).get("labels")) and all(f.matches(item) for f in fields)
        ]
        metadata: JsonObject = {"resourceVersion": self.store.resource_version()}
        items, metadata = _paginate(items, metadata, request)
        for item in items:
            item.pop("kind", None)
            item.pop("apiVersion", None)
        body = {"kind": f"{route.info.kind}List", "apiVersion": route.info.group_version, "metadata": metadata, "items": items}
        return ApiResponse(200, body)

    def _delete_pod(self, cluster: str, route: ResourceRoute) -> ApiResponse:
        namespace, name = str(route.namespace), str(route.name)
        removed = self.store.delete(cluster, PODS, namespace, name)
        if removed is None:
            raise not_found(route.info.group_resource, name)
        removed["metadata"]["deletionTimestamp"] = format_time(self.store.clock.now())
        removed["metadata"]["deletionGracePeriodSeconds"] = 30
        return ApiResponse(200, removed)


def _with_type_meta(obj: JsonObject, route: ResourceRoute) -> JsonObject:
    obj.setdefault("kind", route.info.kind)
    obj.setdefault("apiVersion", route.info.group_version)
    return obj


def _paginate(items: list[JsonObject], metadata: JsonObject, request: ApiRequest) -> tuple[list[JsonObject], JsonObject]:
    """``limit``/``continue`` chunking with an opaque offset token."""
    start = 0
    token = request.param("continue")
    if token:
        try:
            start = int(base64.urlsafe_b64decode(token.encode()).decode())
        except (ValueError, binascii.Error):
            raise bad_request("continue key is not valid: incorrect encoded start resourceVersion") from None
    limit_raw = request.param("limit")
    limit = int(limit_raw) if limit_raw and limit_raw.isdigit() and int(limit_raw) > 0 else 0
    if not limit:
        return items[start:], metadata
    page = items[start : start + limit]
    remaining = len(items) - (start + len(page))
    if remaining > 0:
        metadata["continue"] = base64.urlsafe_b64encode(str(start + limit).encode()).decode()
        metadata["remainingItemCount"] = remaining
    return page, metadata
