"""The Job a ``kubernetes.job`` step creates, built from plain dicts, and how to read a Job's outcome (pure functions).

Where a request's parameters may go: only into the container's ``args`` and ``env`` values.
The image, the command and the CronJob to copy are fixed by the runbook (``JobStep.check_step``
refuses a ``{parameter}`` in them), so whoever runs the runbook chooses values, never what runs.
Args are passed as an argument vector, never through a shell, so a value stays one argument.
"""

from __future__ import annotations

import copy
import math
import re
import shlex
from dataclasses import dataclass
from typing import Any

MANAGED_BY = "app.kubernetes.io/managed-by"
REQUEST_LABEL = "opsbot.dev/request"
REQUESTED_BY = "opsbot.dev/requested-by"
RUNBOOK = "opsbot.dev/runbook"
MAX_NAME = 63
"""A Job's name becomes a pod label value (``job-name``): 63 characters at most."""
DEADLINE_MARGIN_SECONDS = 60
"""The cluster's own deadline trails the run's by this much: opsbot normally stops (and deletes) the Job first."""
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class JobOverrides:
    """What a step sets on the container: arguments (None: keep the template's) and env variables (merged by name)."""

    args: tuple[str, ...] | None
    env: tuple[tuple[str, str], ...]
    container: str | None = None


def inline_template(*, image: str, command: list[str], overrides: JobOverrides) -> dict[str, Any]:
    """A pod template with one container named ``job``; ``restartPolicy: Never`` so every retry is a new pod with its own log."""
    container: dict[str, Any] = {"name": "job", "image": image}
    if command:
        container["command"] = list(command)
    template = {"spec": {"restartPolicy": "Never", "containers": [container]}}
    return apply_overrides(template, overrides)


def cronjob_job_spec(cronjob: dict[str, Any]) -> dict[str, Any]:
    """A copy of the CronJob's ``spec.jobTemplate.spec`` (what ``kubectl create job --from=cronjob/…`` copies)."""
    spec = ((cronjob.get("spec") or {}).get("jobTemplate") or {}).get("spec")
    return copy.deepcopy(spec) if isinstance(spec, dict) else {}


def apply_overrides(template: dict[str, Any], overrides: JobOverrides) -> dict[str, Any]:
    """``template`` with the step's args and env set on its chosen container (``ValueError`` naming the containers)."""
    result = copy.deepcopy(template)
    containers = (result.get("spec") or {}).get("containers") or []
    container = _choose(containers, overrides.container)
    if overrides.args is not None:
        container["args"] = list(overrides.args)
    if overrides.env:
        given = dict(overrides.env)
        kept = [item for item in container.get("env") or [] if item.get("name") not in given]
        container["env"] = [*kept, *({"name": name, "value": value} for name, value in overrides.env)]
    return result


def job_manifest(
    *,
    name: str,
    generate: bool,
    job_spec: dict[str, Any],
    labels: dict[str, str],
    annotations: dict[str, str],
    ttl_seconds: int,
    backoff_limit: int | None,
    active_deadline: float | None,
) -> dict[str, Any]:
    """The Job to POST: ``name`` (or ``generateName`` for a dry run), the TTL that cleans it up, the run's deadline as a cap."""
    spec = copy.deepcopy(job_spec)
    spec["ttlSecondsAfterFinished"] = ttl_seconds
    if backoff_limit is not None:
        spec["backoffLimit"] = backoff_limit
    if active_deadline is not None:
        # If opsbot goes away mid-run, the cluster still stops the Job when the run's time is up.
        spec["activeDeadlineSeconds"] = max(1, math.ceil(active_deadline)) + DEADLINE_MARGIN_SECONDS
    template = spec.setdefault("template", {})
    template_metadata = template.setdefault("metadata", {})
    template_metadata["labels"] = {**(template_metadata.get("labels") or {}), **labels}
    metadata: dict[str, Any] = {"labels": dict(labels), "annotations": dict(annotations)}
    metadata["generateName" if generate else "name"] = name
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": spec}


def job_name(prefix: str, request_id: int, suffix: str) -> str:
    """``<prefix>-<request>-<suffix>``, cut to a valid name: one request may run the same Job step more than once."""
    tail = f"-{request_id}-{suffix}" if request_id else f"-{suffix}"
    return prefix[: MAX_NAME - len(tail)].rstrip("-") + tail


def main_container(job_spec: dict[str, Any], wanted: str | None) -> dict[str, Any]:
    containers = ((job_spec.get("template") or {}).get("spec") or {}).get("containers") or []
    return _choose(containers, wanted)


def shown_command(container: dict[str, Any]) -> str:
    """``migrate up --to 42`` as a shell would quote it (the image's entrypoint when no command is set)."""
    command = [str(part) for part in container.get("command") or []]
    args = [str(part) for part in container.get("args") or []]
    if command:
        return shlex.join([*command, *args])
    return "(image entrypoint)" + (" " + shlex.join(args) if args else "")


@dataclass(frozen=True)
class JobOutcome:
    """Where a Job stands, as ``kubectl wait --for=condition=complete|failed`` decides."""

    done: bool
    succeeded: bool
    reason: str = ""
    message: str = ""


def job_outcome(job: dict[str, Any]) -> JobOutcome:
    """Complete=True → succeeded; Failed=True → failed (with its reason); otherwise still running."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            return JobOutcome(done=True, succeeded=True)
        if condition.get("type") == "Failed":
            return JobOutcome(
                done=True, succeeded=False, reason=str(condition.get("reason") or ""), message=str(condition.get("message") or "")
            )
    return JobOutcome(done=False, succeeded=False)


def newest_pod(pods: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The Job's latest pod (the one whose log says how it ended)."""

    def created(pod: dict[str, Any]) -> tuple[str, str]:
        metadata = pod.get("metadata") or {}
        return str(metadata.get("creationTimestamp") or ""), str(metadata.get("name") or "")

    return max(pods, key=created) if pods else None


def _choose(containers: list[dict[str, Any]], wanted: str | None) -> dict[str, Any]:
    names = ", ".join(str(c.get("name")) for c in containers) or "none"
    if wanted is not None:
        for container in containers:
            if container.get("name") == wanted:
                return container
        raise ValueError(f"the job's pod template has no container {wanted}; containers: {names}")
    if len(containers) == 1:
        return containers[0]
    raise ValueError(f"the job's pod template has {'no' if not containers else 'several'} containers ({names}); say which with container")
