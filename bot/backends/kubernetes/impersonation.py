"""Kubernetes impersonation: the headers that make a call run as the requester, and the wire detail they need.

Why headers and not a client per person: every call of a request (the dry-run plan included)
must carry ``Impersonate-User``, one ``Impersonate-Group`` per group and
``Impersonate-Extra-opsbot-request``, so the cluster's own RBAC decides as it would for that
person, while the connection pool stays shared. The caller (opsbot's ServiceAccount) needs the
``impersonate`` verb on ``users`` and ``groups`` (core API group ``""``) and on
``userextras/opsbot-request`` (``authentication.k8s.io``); see docs/security.md and the Helm chart.

The generated client turns per-call headers into a plain ``dict``, which cannot hold a header
twice; a list value reaches the REST layer intact, so ``RepeatedHeaders`` (wrapped around the
client's REST object) sends each item of a list as its own header line, as the API server
requires for several groups (a comma-joined value would be one group named ``a,b``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.catalog.identity import RequesterIdentity

USER_HEADER = "Impersonate-User"
GROUP_HEADER = "Impersonate-Group"
EXTRA_PREFIX = "Impersonate-Extra-"


@dataclass(frozen=True)
class Impersonation:
    """Who a ``ClusterApi`` acts as: one user, its groups, and the request it acts for."""

    user: str
    groups: tuple[str, ...]
    extras: Mapping[str, str]

    @classmethod
    def of(cls, identity: RequesterIdentity, request_id: int | None) -> Impersonation:
        return cls(user=identity.kube_user, groups=identity.kube_groups, extras=identity.impersonation_extra(request_id))

    def headers(self) -> dict[str, Any]:
        """Per-call headers; a list value is sent as repeated header lines (``RepeatedHeaders``)."""
        headers: dict[str, Any] = {USER_HEADER: self.user}
        if self.groups:
            headers[GROUP_HEADER] = list(self.groups)
        for key, value in self.extras.items():
            headers[f"{EXTRA_PREFIX}{key}"] = value
        return headers

    def describe(self) -> str:
        """``slack:U0ALICE, groups opsbot:developers`` for messages."""
        return f"{self.user}, groups {', '.join(self.groups) or 'none'}"

    def as_audit(self) -> dict[str, object]:
        return {"kubernetes_user": self.user, "kubernetes_groups": list(self.groups), **{f"extra_{k}": v for k, v in self.extras.items()}}


class RepeatedHeaders:
    """A wrapper around the client's ``RESTClientObject`` that sends list-valued headers as repeated lines."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def request(self, method: str, url: str, headers: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
        return self._inner.request(method, url, headers=_expanded(headers), **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _expanded(headers: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if not headers or not any(isinstance(value, list) for value in headers.values()):
        return headers
    from urllib3 import HTTPHeaderDict  # loaded already: a request is being sent (`opsbot validate` never imports it)

    expanded = HTTPHeaderDict()
    for key, value in headers.items():
        for item in value if isinstance(value, list) else [value]:
            expanded.add(key, str(item))
    return expanded


def forbidden_text(impersonation: Impersonation, verb: str, resource: str, what: str, namespace: str, reason: str | None) -> str:
    """A refusal in opsbot's words: who, which verb on which resource where (``what``: object and cluster), the cluster's reason."""
    said = f" The cluster said: {reason.rstrip('.')}." if reason else ""
    return (
        f"Kubernetes says you ({impersonation.describe()}) may not {verb} {resource} in namespace {namespace} ({what}).{said} "
        "Ask the cluster's owners for a RoleBinding, or see `/ops can-i`."
    )
