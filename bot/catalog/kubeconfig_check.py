"""Kubeconfig contexts whose user needs an ``exec`` credential plugin opsbot cannot run.

Why at ``validate`` and startup: an EKS or GKE kubeconfig runs ``aws eks get-token`` or
``gke-gcloud-auth-plugin`` for every token; the opsbot image ships neither, so such a context
would fail at the first deploy, in front of the person asking. Found early, the fix is one
line: ``eks: {cluster, region}`` on the target (or the context under ``kubernetes.eks``), and
opsbot makes the token itself (``bot/backends/kubernetes/eks.py``).

Only contexts opsbot uses are checked, and only when the kubeconfig file exists (in-cluster
deployments have none).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from bot.catalog.config import OpsbotConfig

Which = Callable[[str], str | None]


def exec_plugin_problems(config: OpsbotConfig, *, environ: Mapping[str, str] | None = None, which: Which = shutil.which) -> list[str]:
    """One problem per used context whose user's ``exec`` command is not on the PATH."""
    access = config.kubernetes
    path = _kubeconfig_path(access.kubeconfig, os.environ if environ is None else environ)
    if path is None or not path.is_file():
        return []
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return []  # loading it is the client's job, with its own clear error
    if not isinstance(document, dict):
        return []
    problems: list[str] = []
    for context, where in _used_contexts(config, document):
        if context in access.eks:
            continue
        command = _exec_command(document, context)
        if command is not None and which(command) is None:
            problems.append(
                f"{where}: kubeconfig context {context!r} ({path}) gets its token from the exec plugin {command!r}, which is not on "
                f"the PATH, so opsbot cannot reach that cluster. For EKS, give the target eks: {{cluster: <name>, region: <region>}} "
                f"(or list the context under kubernetes.eks) and opsbot makes the token itself with boto3"
            )
    return problems


def _kubeconfig_path(configured: str | None, environ: Mapping[str, str]) -> Path | None:
    if configured:
        return Path(os.path.expanduser(configured))
    listed = environ.get("KUBECONFIG", "")
    if listed:
        return Path(listed.split(os.pathsep)[0])
    home = environ.get("HOME")
    return Path(home) / ".kube" / "config" if home else None


def _used_contexts(config: OpsbotConfig, document: dict[str, Any]) -> list[tuple[str, str]]:
    used: dict[str, str] = {}
    current = document.get("current-context")
    for service_name, service in config.services.items():
        for env_name, environment in service.environments.items():
            target = environment.kubernetes
            if target is None or target.eks is not None:
                continue
            context = target.context or (None if config.kubernetes.in_cluster else current)
            if isinstance(context, str) and context not in used:
                used[context] = f"services.{service_name}.environments.{env_name}.kubernetes"
    return list(used.items())


def _exec_command(document: dict[str, Any], context: str) -> str | None:
    user_name = None
    for entry in document.get("contexts") or []:
        if isinstance(entry, dict) and entry.get("name") == context:
            user_name = (entry.get("context") or {}).get("user")
    for entry in document.get("users") or []:
        if isinstance(entry, dict) and entry.get("name") == user_name:
            exec_block = (entry.get("user") or {}).get("exec")
            if isinstance(exec_block, dict) and exec_block.get("command"):
                return str(exec_block["command"])
    return None
