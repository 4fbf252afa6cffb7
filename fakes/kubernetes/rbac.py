"""Impersonation and a small RBAC model, checked the way kube-apiserver's filters do.

A request with ``Impersonate-User`` is first checked against what the *caller* may
impersonate (``impersonate`` on ``users`` and ``groups`` in the core API group, and on
``userextras/<key>`` in ``authentication.k8s.io``, as kube-apiserver's impersonation filter
asks), then authorized as the impersonated user and groups against
``Grant`` rules (a Role and its RoleBinding in one: verbs, API groups, resources,
namespaces, resourceNames, subjects). As with RBAC, nothing is allowed unless a rule allows
it -- once the first grant is added (or ``enforce()`` is called): until then, like the rest of
the fake, impersonated requests are allowed, so a test that does not care about RBAC does not
have to write any. Requests without impersonation keep the server's ``AccessPolicy`` (allow
all but the test's deny rules).

Messages are kube-apiserver's, word for word (``statuses.forbidden_request``).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from fakes.kubernetes.statuses import ApiError, GroupResource, forbidden_request, internal_error

USER_HEADER = "impersonate-user"
GROUP_HEADER = "impersonate-group"
UID_HEADER = "impersonate-uid"
EXTRA_PREFIX = "impersonate-extra-"
AUTHENTICATED = "system:authenticated"


@dataclass(frozen=True)
class Caller:
    """Who a request is authorized as: the authenticated user, or the one it impersonates."""

    user: str
    groups: tuple[str, ...] = ()
    extras: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    impersonated: bool = False


@dataclass(frozen=True)
class Grant:
    """A Role (or ClusterRole) bound to users and groups: the smallest RBAC model opsbot needs.

    ``namespaces`` of ``("*",)`` is a ClusterRoleBinding; ``resource_names`` empty means any
    object; ``resources`` name subresources as RBAC does (``deployments/scale``).
    """

    name: str
    verbs: tuple[str, ...]
    resources: tuple[str, ...]
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ("*",)
    api_groups: tuple[str, ...] = ("*",)
    resource_names: tuple[str, ...] = ()
    clusters: tuple[str, ...] = ("*",)

    def binds(self, caller: Caller) -> bool:
        return caller.user in self.users or any(group in self.groups for group in caller.groups)

    def allows(self, cluster: str, verb: str, group: str, resource: str, namespace: str | None, name: str | None) -> bool:
        return (
            _listed(cluster, self.clusters)
            and _listed(verb, self.verbs)
            and _listed(group, self.api_groups)
            and _listed(resource, self.resources)
            and ((namespace is None and "*" in self.namespaces) or (namespace is not None and _listed(namespace, self.namespaces)))
            and (not self.resource_names or (name is not None and name in self.resource_names))
        )

    def describe(self) -> str:
        kind = "ClusterRoleBinding" if "*" in self.namespaces else "RoleBinding"
        return f'{kind} "{self.name}"'


@dataclass(frozen=True)
class ImpersonationLimit:
    """What the authenticated caller may impersonate: user names and groups by prefix (``None``: anything)."""

    user_prefix: str | None = None
    group_prefix: str | None = None
    extras: tuple[str, ...] | None = None


class RbacModel:
    """Grants per impersonated identity, and the caller's impersonation limit; edited by tests and the demo."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._grants: list[Grant] = []
        self._limit = ImpersonationLimit()
        self._enforcing = False

    def grant(self, grant: Grant) -> None:
        """Add a grant; from now on impersonated requests need one (deny unless allowed)."""
        with self._lock:
            self._grants.append(grant)
            self._enforcing = True

    def enforce(self) -> None:
        """Deny impersonated requests unless a grant allows them, even with no grant yet."""
        with self._lock:
            self._enforcing = True

    def clear(self) -> None:
        """No grants, no limit, nothing enforced (the fake's permissive default)."""
        with self._lock:
            self._grants.clear()
            self._limit = ImpersonationLimit()
            self._enforcing = False

    def limit_impersonation(self, limit: ImpersonationLimit) -> None:
        with self._lock:
            self._limit = limit

    def caller(self, authenticated_user: str, header_lists: Mapping[str, Sequence[str]]) -> Caller:
        """The identity to authorize: the impersonated one when headers ask (after checking the caller may)."""
        users = list(header_lists.get(USER_HEADER, ()))
        groups = tuple(header_lists.get(GROUP_HEADER, ()))
        extras = {key[len(EXTRA_PREFIX) :]: tuple(values) for key, values in header_lists.items() if key.startswith(EXTRA_PREFIX)}
        if not users:
            if groups or extras or header_lists.get(UID_HEADER):
                raise internal_error("requested impersonation without a user: impersonating groups, extras or a UID needs Impersonate-User")
            return Caller(authenticated_user)
        user = users[-1]
        with self._lock:
            limit = self._limit
        self._check_may_impersonate(authenticated_user, limit, user, groups, extras)
        return Caller(user, (*groups, AUTHENTICATED), extras, impersonated=True)

    def allowed(
        self, caller: Caller, cluster: str, verb: str, group: str, resource: str, namespace: str | None, name: str | None
    ) -> Grant | None:
        """The first grant allowing this, or None (RBAC: deny unless allowed); ``ALLOW_ALL`` when not enforcing."""
        with self._lock:
            grants, enforcing = list(self._grants), self._enforcing
        if not enforcing:
            return ALLOW_ALL
        for grant in grants:
            if grant.binds(caller) and grant.allows(cluster, verb, group, resource, namespace, name):
                return grant
        return None

    def authorize(
        self, caller: Caller, cluster: str, verb: str, resource: GroupResource, rbac_resource: str, namespace: str | None, name: str | None
    ) -> None:
        """Raise the apiserver's 403 unless a grant allows ``verb`` on the resource for ``caller``."""
        if self.allowed(caller, cluster, verb, resource.group, rbac_resource, namespace, name) is None:
            raise forbidden_request(resource, name or "", user=caller.user, verb=verb, resource_path=rbac_resource, namespace=namespace)

    @staticmethod
    def _check_may_impersonate(
        authenticated: str, limit: ImpersonationLimit, user: str, groups: Sequence[str], extras: Mapping[str, Sequence[str]]
    ) -> None:
        if limit.user_prefix is not None and not user.startswith(limit.user_prefix):
            raise _cannot_impersonate(authenticated, "users", user)
        for group in groups:
            if limit.group_prefix is not None and not group.startswith(limit.group_prefix):
                raise _cannot_impersonate(authenticated, "groups", group)
        for key, values in extras.items():
            if limit.extras is not None and key not in limit.extras:
                raise _cannot_impersonate(authenticated, f"userextras/{key}", values[0] if values else "")


ALLOW_ALL = Grant("fake-allow-all", ("*",), ("*",), users=("*",))
"""What answers while no grant was ever added: the fake's permissive default."""


def _cannot_impersonate(authenticated: str, resource: str, name: str) -> ApiError:
    """The impersonation filter's 403: users and groups are core-group resources, user extras ``authentication.k8s.io``'s.

    ``users "x" is forbidden: User "<sa>" cannot impersonate resource "users" in API group "" at the cluster scope``.
    """
    base = resource.split("/", 1)[0]
    group = "authentication.k8s.io" if base in ("userextras", "uids") else ""
    return forbidden_request(
        GroupResource(group, base), name, user=authenticated, verb="impersonate", resource_path=resource, namespace=None
    )


def _listed(value: str, allowed: Sequence[str]) -> bool:
    return "*" in allowed or value in allowed
