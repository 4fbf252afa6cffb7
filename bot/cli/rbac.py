"""``opsbot rbac``: the Kubernetes permissions the catalog needs, for exactly the Deployments it names.

Why generated: a Role granting ``patch`` on every Deployment of a namespace lets whoever controls
opsbot rewrite any pod template there, and a pod template can mount any Secret of the namespace.
With ``resourceNames`` the ``get``/``patch`` rules reach only the Deployments the catalog lists
(and their ``scale`` subresource); ``list``/``watch`` cannot be narrowed by name in Kubernetes
RBAC, so they stay namespace-wide but read-only (the health watch lists Deployments; rollback
lists ReplicaSets by selector; status lists Pods).

Jobs are granted only where they are needed: when a runbook has a ``kubernetes.job`` step, every
namespace of the catalog's targets also gets create/get/delete on Jobs, get on pods/log, and get on
exactly the CronJobs those steps copy (``from_cronjob``, which ``opsbot validate`` keeps literal).
Creating Jobs lets opsbot start any pod in the namespace, so a catalog without such a runbook
never asks for it.

Two outputs: Role/RoleBinding manifests to apply (``--format manifests``) and the chart's values
(``--format values``: ``rbac.targets`` and ``serviceAccount.automountToken``), so
``helm upgrade -f <(opsbot rbac --format values)`` keeps the chart's Role in step with the catalog.
Targets are per cluster: the default is the cluster opsbot runs in (targets without a
``context``); ``--context NAME`` prints what to apply in the cluster behind that kubeconfig context.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import yaml

from bot.catalog.catalog import check_files
from bot.catalog.config import KubernetesTarget, OpsbotConfig
from bot.catalog.loading import LoadResult
from bot.requests.builtin_specs import BUILTIN_SPECS
from bot.settings import Settings

IN_CLUSTER = "in-cluster"
ROLE_SUFFIX = "runbooks"
RBAC_API = "rbac.authorization.k8s.io/v1"
JOB_ACTION = "kubernetes.job"


@dataclass(frozen=True)
class JobAccess:
    """What the catalog's ``kubernetes.job`` steps need: Jobs at all, and which CronJobs they copy."""

    cronjobs: tuple[str, ...] = ()


@click.command("rbac")
@click.option("--context", default=IN_CLUSTER, show_default=True, help="The cluster: a kubeconfig context of the catalog, or in-cluster.")
@click.option("--format", "fmt", type=click.Choice(["manifests", "values"]), default="manifests", show_default=True)
@click.option("--service-account", default="opsbot", show_default=True, help="Who is granted the Role.")
@click.option("--service-account-namespace", default="opsbot", show_default=True)
def rbac(context: str, fmt: str, service_account: str, service_account_namespace: str) -> None:
    """Print the Role and RoleBinding (or the chart's values) for exactly the Deployments the catalog names."""
    settings = Settings()
    loaded = _catalog_files(settings.config_path, settings.runbooks_dir)
    assert loaded.config is not None  # _catalog_files raised on any problem
    config, jobs = loaded.config, job_access(loaded)
    targets = deployments_by_namespace(config, context=context)
    if not targets:
        known = ", ".join(sorted(contexts_of(config))) or "none"
        raise click.UsageError(f"no Kubernetes targets in cluster {context!r} in the catalog (clusters with targets: {known})")
    if fmt == "values":
        values = chart_values(targets, automount_token=needs_service_account_token(config), jobs=jobs)
        sys.stdout.write(yaml.safe_dump(values, sort_keys=False))
        return
    manifests = role_manifests(targets, service_account=service_account, service_account_namespace=service_account_namespace, jobs=jobs)
    sys.stdout.write(yaml.safe_dump_all(manifests, sort_keys=False))


def deployments_by_namespace(config: OpsbotConfig, *, context: str = IN_CLUSTER) -> dict[str, list[str]]:
    """namespace → the Deployments of ``context``'s cluster the catalog names, sorted."""
    found: dict[str, set[str]] = {}
    for target in _kubernetes_targets(config):
        if (target.context or IN_CLUSTER) == context:
            found.setdefault(target.namespace, set()).add(target.deployment)
    return {namespace: sorted(names) for namespace, names in sorted(found.items())}


def contexts_of(config: OpsbotConfig) -> set[str]:
    return {target.context or IN_CLUSTER for target in _kubernetes_targets(config)}


def needs_service_account_token(config: OpsbotConfig) -> bool:
    """Whether opsbot talks to its own cluster's API (in-cluster targets, or ``in_cluster: true``)."""
    return config.kubernetes.in_cluster or IN_CLUSTER in contexts_of(config)


def job_access(loaded: LoadResult) -> JobAccess | None:
    """The Job rules the runbooks need, or None when no runbook runs a Job."""
    steps = [step for item in loaded.runbooks for step in item.runbook.steps if step.action == JOB_ACTION]
    if not steps:
        return None
    cronjobs = {str(step.args["from_cronjob"]) for step in steps if step.args.get("from_cronjob")}
    return JobAccess(cronjobs=tuple(sorted(cronjobs)))


def rules_for(deployments: list[str], jobs: JobAccess | None = None) -> list[dict[str, Any]]:
    """What the runbooks' Kubernetes actions need (docs/security.md), ``get``/``patch`` only on ``deployments``."""
    rules: list[dict[str, Any]] = [
        {"apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": list(deployments), "verbs": ["get", "patch"]},
        {"apiGroups": ["apps"], "resources": ["deployments/scale"], "resourceNames": list(deployments), "verbs": ["get", "patch"]},
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["list", "watch"]},
        {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
    ]
    if jobs is not None:
        rules.append({"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "get", "delete"]})
        if jobs.cronjobs:
            rules.append({"apiGroups": ["batch"], "resources": ["cronjobs"], "resourceNames": list(jobs.cronjobs), "verbs": ["get"]})
        rules.append({"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]})
    return rules


def role_manifests(
    targets: dict[str, list[str]], *, service_account: str, service_account_namespace: str, jobs: JobAccess | None = None
) -> list[dict[str, Any]]:
    """A Role and a RoleBinding per namespace, for ``service_account``."""
    name = f"{service_account}-{ROLE_SUFFIX}"
    manifests: list[dict[str, Any]] = []
    for namespace, deployments in targets.items():
        rules = rules_for(deployments, jobs)
        manifests.append({"apiVersion": RBAC_API, "kind": "Role", "metadata": _metadata(name, namespace), "rules": rules})
        manifests.append({
            "apiVersion": RBAC_API, "kind": "RoleBinding", "metadata": _metadata(name, namespace),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": service_account_namespace}],
        })  # fmt: skip
    return manifests


def chart_values(targets: dict[str, list[str]], *, automount_token: bool, jobs: JobAccess | None = None) -> dict[str, Any]:
    """The chart's values that carry the same Roles (``deploy/helm/opsbot``: ``rbac.targets``)."""
    return {
        "rbac": {
            "create": True,
            "targets": [{"namespace": namespace, "deployments": names, **_job_values(jobs)} for namespace, names in targets.items()],
        },
        "serviceAccount": {"automountToken": automount_token},
    }


def _job_values(jobs: JobAccess | None) -> dict[str, Any]:
    """A target's ``jobs``/``cronjobs`` values: a fresh list each, so the YAML carries no anchors."""
    if jobs is None:
        return {}
    return {"jobs": True, "cronjobs": list(jobs.cronjobs)} if jobs.cronjobs else {"jobs": True}


def _metadata(name: str, namespace: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": namespace,
        "labels": {"app.kubernetes.io/name": "opsbot", "app.kubernetes.io/component": "runbooks-rbac"},
    }


def _kubernetes_targets(config: OpsbotConfig) -> Iterable[KubernetesTarget]:
    for service in config.services.values():
        for environment in service.environments.values():
            if environment.kubernetes is not None:
                yield environment.kubernetes


def _catalog_files(config_path: Path, runbooks_dir: Path) -> LoadResult:
    """The config and runbooks, checked as ``opsbot validate`` checks them: the Roles follow what the runbooks do."""
    result = check_files(config_path, runbooks_dir, builtins=BUILTIN_SPECS)
    if result.problems or result.config is None:
        problems = "\n".join(f"  {problem}" for problem in result.problems) or f"  {config_path}: it could not be read"
        raise click.ClickException(f"the catalog has problems; fix them (`opsbot validate`) before generating RBAC:\n{problems}")
    return result
