"""URL layout of the Kubernetes REST API and the discovery documents.

Turns ``/apis/apps/v1/namespaces/shop/deployments/checkout/scale`` into a
:class:`ResourceRoute` and an HTTP method into the RBAC verb the real
authorizer would check (``get``/``list``/``create``/``update``/``patch``/...).
The resource table is the single place that says what the fake serves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from fakes.kubernetes.json_values import JsonObject
from fakes.kubernetes.statuses import GroupResource

_READ = frozenset({"get", "list"})
_WRITE = frozenset({"get", "update", "patch"})


@dataclass(frozen=True)
class ResourceInfo:
    """What the fake serves for one resource."""

    group: str
    resource: str
    kind: str
    namespaced: bool
    verbs: frozenset[str]
    subresources: Mapping[str, frozenset[str]] = field(default_factory=dict)
    short_names: tuple[str, ...] = ()
    singular: str = ""

    @property
    def group_version(self) -> str:
        """``apps/v1`` or ``v1`` for the core group."""
        return f"{self.group}/v1" if self.group else "v1"

    @property
    def group_resource(self) -> GroupResource:
        """The group-qualified resource used in error messages."""
        return GroupResource(self.group, self.resource)


RESOURCES: dict[tuple[str, str], ResourceInfo] = {
    ("", "namespaces"): ResourceInfo("", "namespaces", "Namespace", False, _READ, short_names=("ns",)),
    ("", "pods"): ResourceInfo("", "pods", "Pod", True, _READ | {"delete"}, {"log": frozenset({"get"})}, ("po",)),
    ("apps", "deployments"): ResourceInfo(
        "apps",
        "deployments",
        "Deployment",
        True,
        frozenset({"get", "list", "create", "update", "patch", "delete"}),
        {"status": _WRITE, "scale": _WRITE},
        ("deploy",),
    ),
    ("apps", "replicasets"): ResourceInfo("apps", "replicasets", "ReplicaSet", True, _READ, short_names=("rs",)),
    # Jobs and CronJobs (fakes/kubernetes/jobs.py): created and deleted through the API, run by the simulated job controller.
    ("batch", "jobs"): ResourceInfo("batch", "jobs", "Job", True, _READ | {"create", "delete"}),
    ("batch", "cronjobs"): ResourceInfo("batch", "cronjobs", "CronJob", True, _READ | {"create", "delete"}, short_names=("cj",)),
}
_GROUPS = {"": "v1", "apps": "v1", "batch": "v1"}


@dataclass(frozen=True)
class ResourceRoute:
    """A request aimed at a resource collection, object or subresource."""

    info: ResourceInfo
    namespace: str | None
    name: str | None
    subresource: str | None

    @property
    def rbac_resource(self) -> str:
        """``deployments`` or ``deployments/scale``, as RBAC rules name it."""
        return f"{self.info.resource}/{self.subresource}" if self.subresource else self.info.resource


@dataclass(frozen=True)
class DiscoveryRoute:
    """A request for one of the discovery documents."""

    document: str  # "version", "api", "apis", or a group-version such as "apps/v1"


def parse_path(path: str) -> ResourceRoute | DiscoveryRoute | None:
    """Map an API path (without the cluster prefix) to a route, or ``None``."""
    parts = [p for p in path.split("/") if p]
    if parts in (["version"], ["api"], ["apis"]):
        return DiscoveryRoute(parts[0])
    if len(parts) >= 2 and parts[0] == "api" and parts[1] == "v1":
        group, rest = "", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis" and _GROUPS.get(parts[1]) == parts[2]:
        group, rest = parts[1], parts[3:]
    elif len(parts) == 2 and parts[0] == "apis" and parts[1] in _GROUPS:
        return DiscoveryRoute(parts[1])
    else:
        return None
    if not rest:
        return DiscoveryRoute(f"{group}/v1" if group else "v1")
    return _resource_route(group, rest)


def _resource_route(group: str, rest: list[str]) -> ResourceRoute | None:
    namespace: str | None = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    info = RESOURCES.get((group, rest[0]))
    if info is None or len(rest) > 3 or (namespace is not None and not info.namespaced):
        return None
    name = rest[1] if len(rest) >= 2 else None
    subresource = rest[2] if len(rest) == 3 else None
    if subresource is not None and subresource not in info.subresources:
        return None
    return ResourceRoute(info, namespace, name, subresource)


def verb_for(method: str, route: ResourceRoute, watch: bool) -> str | None:
    """The RBAC verb for an HTTP method on a route (``None`` if meaningless)."""
    if method == "GET":
        if watch:
            return "watch"
        return "get" if route.name else "list"
    if route.name is None:
        return {"POST": "create", "DELETE": "deletecollection"}.get(method)
    return {"PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method)


def verb_allowed(route: ResourceRoute, verb: str) -> bool:
    """Whether the fake serves ``verb`` on this route."""
    if route.info.namespaced and route.namespace is None and verb != "list":
        return False
    if route.subresource is not None:
        return verb in route.info.subresources[route.subresource]
    return verb in route.info.verbs


def discovery_document(document: str, server_address: str) -> JsonObject | None:
    """The body for ``/version``, ``/api``, ``/apis`` or a group-version."""
    if document == "version":
        return {
            "major": "1",
            "minor": "31",
            "gitVersion": "v1.31.0-opsbot-fake",
            "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean",
            "buildDate": "2024-08-13T00:00:00Z",
            "goVersion": "go1.22.5",
            "compiler": "gc",
            "platform": "linux/amd64",
        }
    if document == "api":
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
        }
    if document == "apis":
        groups = [
            {
                "name": group,
                "versions": [{"groupVersion": f"{group}/{version}", "version": version}],
                "preferredVersion": {"groupVersion": f"{group}/{version}", "version": version},
            }
            for group, version in _GROUPS.items()
            if group
        ]
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
    if document in _GROUPS and document:
        version = {"groupVersion": f"{document}/v1", "version": "v1"}
        return {"kind": "APIGroup", "apiVersion": "v1", "name": document, "versions": [version], "preferredVersion": version}
    return _resource_list(document)


def _resource_list(group_version: str) -> JsonObject | None:
    group = "" if group_version == "v1" else group_version.split("/", 1)[0]
    if group not in _GROUPS:
        return None
    resources: list[JsonObject] = []
    for info in RESOURCES.values():
        if info.group != group:
            continue
        entry: JsonObject = {
            "name": info.resource,
            "singularName": info.kind.lower(),
            "namespaced": info.namespaced,
            "kind": info.kind,
            "verbs": sorted(info.verbs),
        }
        if info.short_names:
            entry["shortNames"] = list(info.short_names)
        resources.append(entry)
        for sub, verbs in info.subresources.items():
            kind = "Scale" if sub == "scale" else info.kind
            sub_entry: JsonObject = {
                "name": f"{info.resource}/{sub}",
                "singularName": "",
                "namespaced": info.namespaced,
                "kind": kind,
                "verbs": sorted(verbs),
            }
            if sub == "scale":
                sub_entry.update(group="autoscaling", version="v1")
            resources.append(sub_entry)
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}
