"""Kubeconfig files that point the official client at the fake server.

Each context gets its own cluster entry whose server URL carries a
``/clusters/<context>`` path prefix; the fake routes on that prefix, so one
listening port can stand in for several independent clusters.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import yaml

from fakes.kubernetes.json_values import JsonObject

DEFAULT_TOKEN = "opsbot-fake-token"
DEFAULT_USER_ENTRY = "opsbot-fake"


def cluster_url(base_url: str, cluster: str) -> str:
    """The API server URL a client should use for ``cluster``."""
    return f"{base_url.rstrip('/')}/clusters/{cluster}"


def build_kubeconfig(
    base_url: str,
    contexts: Sequence[str],
    *,
    current: str | None = None,
    namespace: str | None = None,
    token: str = DEFAULT_TOKEN,
) -> JsonObject:
    """A kubeconfig document with one cluster+context per name in ``contexts``."""
    if not contexts:
        raise ValueError("a kubeconfig needs at least one context")
    if current is not None and current not in contexts:
        raise ValueError(f"current context {current!r} is not one of {list(contexts)!r}")
    context_entries: list[JsonObject] = []
    for name in contexts:
        context: JsonObject = {"cluster": name, "user": DEFAULT_USER_ENTRY}
        if namespace:
            context["namespace"] = namespace
        context_entries.append({"name": name, "context": context})
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": name, "cluster": {"server": cluster_url(base_url, name)}} for name in contexts],
        "contexts": context_entries,
        "current-context": current or contexts[0],
        "users": [{"name": DEFAULT_USER_ENTRY, "user": {"token": token}}],
    }


def write_kubeconfig(path: str | os.PathLike[str], config: JsonObject) -> Path:
    """Write ``config`` as YAML with owner-only permissions, like kubectl does."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    target.chmod(0o600)
    return target
