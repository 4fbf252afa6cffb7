"""batch/v1 Jobs and CronJobs in the fake cluster, a job controller, and the pod logs a kubelet would keep.

Served at the real paths (``/apis/batch/v1/namespaces/{ns}/jobs[/{name}]``, ``…/cronjobs``,
``/api/v1/namespaces/{ns}/pods/{name}/log``) with the apiserver's defaulting, validation (422
``Invalid`` with causes), 409 ``AlreadyExists``, 404 ``NotFound`` and ``dryRun=All``. Deleting a
Job honours ``propagationPolicy``: ``Background``/``Foreground`` remove its pods, ``Orphan`` (the
API's default for Jobs) leaves them.

The job controller runs one pod at a time (``parallelism``/``completions`` of 1, what a migration
Job uses). A pod is Pending for one tick, then Running, then exits; what its container "does" is
set by env variables on the pod template, so a test controls it from the Job or CronJob it creates:

- ``FAKE_JOB_TICKS`` (default 2): ticks the container runs before it exits;
- ``FAKE_JOB_EXIT`` (default 0): its exit code (non-zero: the pod fails, and the Job retries up
  to ``backoffLimit`` pods before it is ``Failed`` with reason ``BackoffLimitExceeded``);
- ``FAKE_JOB_LINES`` (default 3): output lines it prints, spread over its running ticks.

The log starts with ``$ <command and args>`` and one ``NAME=value`` line per other literal env
variable (so a test sees what the parameters became), then ``output line i of N``. Finished Jobs
get ``Complete`` (with ``SuccessCriteriaMet``) or ``Failed`` (with ``FailureTarget``) conditions,
``succeeded``/``failed`` counts and ``completionTime``; ``activeDeadlineSeconds`` fails a Job with
``DeadlineExceeded``; ``ttlSecondsAfterFinished`` deletes it (and its pods) once that much
simulated time has passed after it finished.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from datetime import datetime, timedelta

from fakes.kubernetes.exchange import ApiRequest, ApiResponse
from fakes.kubernetes.json_values import JsonObject, deep_copy, dig
from fakes.kubernetes.object_store import PODS, ObjectStore, format_time, parse_time
from fakes.kubernetes.statuses import (
    ApiError,
    FieldError,
    GroupResource,
    already_exists,
    bad_request,
    invalid,
    invalid_object,
    not_found,
    not_supported,
    required,
)

JOBS = "jobs"
CRONJOBS = "cronjobs"
POD_LOGS = "podlogs"
"""A bucket the API never lists: the lines each pod's container printed (the kubelet's log files)."""

JOB_RESOURCE = GroupResource("batch", "jobs")
CRONJOB_RESOURCE = GroupResource("batch", "cronjobs")
POD_RESOURCE = GroupResource("", "pods")
CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
JOB_NAME = "batch.kubernetes.io/job-name"
DEFAULT_BACKOFF_LIMIT = 6
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


# --------------------------------------------------------------------------- the API


class BatchApi:
    """Writes to Jobs and CronJobs, and pod logs; reads and lists are the generic ones in ``api.py``."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    def create(self, cluster: str, namespace: str, resource: str, request: ApiRequest) -> ApiResponse:
        kind = "Job" if resource == JOBS else "CronJob"
        obj = request.object_body(kind)
        dry_run = request.dry_run("CreateOptions")
        metadata = obj.setdefault("metadata", {})
        if not isinstance(metadata, dict):
            raise bad_request(f'{kind} in version "v1" cannot be handled as a {kind}: metadata must be an object')
        metadata["namespace"] = namespace
        if not metadata.get("name") and metadata.get("generateName"):
            metadata["name"] = f"{metadata['generateName']}{self.store.random_suffix()}"
        obj["apiVersion"], obj["kind"] = "batch/v1", kind
        name = str(metadata.get("name") or "")
        errors = _default_and_validate_job(obj) if resource == JOBS else _validate_cronjob(obj)
        if errors:
            raise invalid_object("batch", kind, name, errors)
        if self.store.get(cluster, resource, namespace, name) is not None:
            raise already_exists(JOB_RESOURCE if resource == JOBS else CRONJOB_RESOURCE, name)
        created = self.store.create(cluster, resource, obj, dry_run=dry_run)
        if resource == JOBS:
            created = _stamp_controller_uid(created)
            if not dry_run:
                created = self.store.update(cluster, JOBS, created)
        return ApiResponse(201, created)

    def delete(self, cluster: str, namespace: str, resource: str, name: str, request: ApiRequest) -> ApiResponse:
        kind_resource = JOB_RESOURCE if resource == JOBS else CRONJOB_RESOURCE
        dry_run = request.dry_run("DeleteOptions")
        found = self.store.get(cluster, resource, namespace, name)
        if found is None:
            raise not_found(kind_resource, name)
        policy = request.param("propagationPolicy") or _body_policy(request) or "Orphan"
        if policy not in ("Orphan", "Background", "Foreground"):
            error = not_supported("propagationPolicy", policy, ["Foreground", "Background", "Orphan"])
            raise invalid_object("meta.k8s.io", "DeleteOptions", "", [error])
        if not dry_run:
            self.store.delete(cluster, resource, namespace, name)
            if resource == JOBS:
                release_pods(self.store, cluster, found, delete=policy != "Orphan")
        details = {"name": name, "group": "batch", "kind": resource, "uid": found["metadata"]["uid"]}
        return ApiResponse(200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})

    def pod_log(self, cluster: str, namespace: str, name: str, request: ApiRequest) -> ApiResponse:
        """``GET …/pods/{name}/log`` (``container``, ``tailLines``, ``limitBytes``): plain text, as the kubelet serves it."""
        pod = self.store.get(cluster, PODS, namespace, name)
        if pod is None:
            raise not_found(POD_RESOURCE, name)
        containers = [str(c.get("name")) for c in dig(pod, "spec", "containers") or []]
        container = request.param("container")
        if container is None:
            if len(containers) != 1:
                raise bad_request(f"a container name must be specified for pod {name}, choose one of: [{' '.join(containers)}]")
            container = containers[0]
        elif container not in containers:
            raise bad_request(f"container {container} is not valid for pod {name}")
        if dig(pod, "status", "phase") in (None, "Pending"):
            raise bad_request(f'container "{container}" in pod "{name}" is waiting to start: ContainerCreating')
        lines = pod_log_lines(self.store, cluster, namespace, name)
        tail = request.param("tailLines")
        if tail is not None:
            if not tail.lstrip("-").isdigit():
                raise bad_request(f'tailLines: invalid value "{tail}"')
            count = int(tail)
            lines = lines[-count:] if count > 0 else ([] if count == 0 else lines)
        text = "".join(f"{line}\n" for line in lines)
        limit = request.param("limitBytes")
        if limit is not None and limit.isdigit() and int(limit) > 0:
            text = text.encode()[: int(limit)].decode("utf-8", errors="ignore")
        return ApiResponse(200, {}, text=text)


def pod_log_lines(store: ObjectStore, cluster: str, namespace: str, name: str) -> list[str]:
    found = store.get(cluster, POD_LOGS, namespace, name)
    return [str(line) for line in (found or {}).get("lines") or []]


def release_pods(store: ObjectStore, cluster: str, job: JsonObject, *, delete: bool) -> None:
    """What the garbage collector does to a deleted Job's pods: delete them, or orphan them (drop the owner reference)."""
    uid = job["metadata"]["uid"]
    for pod in store.list(cluster, PODS, job["metadata"]["namespace"]):
        refs = pod["metadata"].get("ownerReferences") or []
        if not any(ref.get("uid") == uid for ref in refs):
            continue
        if delete:
            store.delete(cluster, PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])
        else:
            pod["metadata"]["ownerReferences"] = [ref for ref in refs if ref.get("uid") != uid]
            store.update(cluster, PODS, pod)


def _body_policy(request: ApiRequest) -> str | None:
    if not request.body:
        return None
    try:
        body = request.decoded_body()
    except ApiError:
        return None
    policy = body.get("propagationPolicy") if isinstance(body, dict) else None
    return str(policy) if policy else None


# --------------------------------------------------------------------------- defaulting and validation


def _default_and_validate_job(job: JsonObject) -> list[FieldError]:
    errors = _name_errors(job.get("metadata") or {})
    spec = job.setdefault("spec", {})
    if not isinstance(spec, dict):
        return [*errors, invalid("spec", spec, "must be an object")]
    spec.setdefault("parallelism", 1)
    spec.setdefault("completions", 1)
    spec.setdefault("backoffLimit", DEFAULT_BACKOFF_LIMIT)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    errors += _template_errors(spec.get("template"), "spec.template")
    for field in ("backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished"):
        value = spec.get(field)
        if value is not None and (not isinstance(value, int) or value < 0 or (field == "activeDeadlineSeconds" and value == 0)):
            detail = "must be greater than zero" if field == "activeDeadlineSeconds" else "must be greater than or equal to 0"
            errors.append(invalid(f"spec.{field}", value, detail))
    job.pop("status", None)
    job["status"] = {}
    return errors


def _validate_cronjob(cronjob: JsonObject) -> list[FieldError]:
    errors = _name_errors(cronjob.get("metadata") or {})
    spec = cronjob.get("spec")
    if not isinstance(spec, dict):
        return [*errors, required("spec")]
    if not spec.get("schedule"):
        errors.append(required("spec.schedule"))
    spec.setdefault("concurrencyPolicy", "Allow")
    spec.setdefault("suspend", False)
    job_spec = dig(spec, "jobTemplate", "spec")
    if not isinstance(job_spec, dict):
        errors.append(required("spec.jobTemplate.spec"))
    else:
        errors += _template_errors(job_spec.get("template"), "spec.jobTemplate.spec.template")
    cronjob["status"] = {}
    return errors


def _name_errors(metadata: JsonObject) -> list[FieldError]:
    name = metadata.get("name")
    if not name:
        return [required("metadata.name", "name or generateName is required")]
    if len(str(name)) > 63 or not _NAME.match(str(name)):
        return [invalid("metadata.name", name, "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
                        "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
                        "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")]  # fmt: skip
    return []


def _template_errors(template: object, path: str) -> list[FieldError]:
    if not isinstance(template, dict):
        return [required(path)]
    spec = template.get("spec")
    if not isinstance(spec, dict):
        return [required(f"{path}.spec")]
    errors: list[FieldError] = []
    policy = spec.get("restartPolicy")
    if policy not in ("Never", "OnFailure"):
        errors.append(not_supported(f"{path}.spec.restartPolicy", policy or "", ["OnFailure", "Never"]))
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        return [*errors, required(f"{path}.spec.containers")]
    for index, container in enumerate(containers):
        where = f"{path}.spec.containers[{index}]"
        if not isinstance(container, dict):
            errors.append(invalid(where, container, "must be an object"))
            continue
        if not container.get("name"):
            errors.append(required(f"{where}.name"))
        if not container.get("image"):
            errors.append(required(f"{where}.image"))
        for position, variable in enumerate(container.get("env") or []):
            env_name = variable.get("name") if isinstance(variable, dict) else None
            if not isinstance(env_name, str) or not _ENV_NAME.match(env_name):
                detail = "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit"  # noqa: E501
                errors.append(invalid(f"{where}.env[{position}].name", env_name, detail))
            elif not isinstance(variable.get("value", ""), str):
                errors.append(invalid(f"{where}.env[{position}].value", variable.get("value"), "must be a string"))
        for field in ("command", "args"):
            value = container.get(field)
            if value is not None and (not isinstance(value, list) or not all(isinstance(item, str) for item in value)):
                errors.append(invalid(f"{where}.{field}", value, "must be a list of strings"))
    return errors


def _stamp_controller_uid(job: JsonObject) -> JsonObject:
    """The selector and pod labels the job controller owns (``controller-uid`` = the Job's uid)."""
    updated = deep_copy(job)
    uid, name = updated["metadata"]["uid"], updated["metadata"]["name"]
    updated["spec"]["selector"] = {"matchLabels": {CONTROLLER_UID: uid}}
    labels = updated["spec"]["template"].setdefault("metadata", {}).setdefault("labels", {})
    labels.update({CONTROLLER_UID: uid, JOB_NAME: name, "controller-uid": uid, "job-name": name})
    return updated


# --------------------------------------------------------------------------- the controller


class JobController:
    """Runs each unfinished Job's pod through Pending → Running → exit, one tick at a time, and keeps Job status."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    def step(self, cluster: str) -> None:
        for job in self.store.list(cluster, JOBS):
            if _finished_at(job) is not None:
                self._expire(cluster, job)
                continue
            self._sync(cluster, job)

    def _sync(self, cluster: str, job: JsonObject) -> None:
        now = self.store.clock.now()
        spec, status = job["spec"], dict(job.get("status") or {})
        status.setdefault("startTime", format_time(now))
        pods = self._pods(cluster, job)
        for pod in pods:
            if dig(pod, "status", "phase") in ("Pending", "Running"):
                self._advance(cluster, pod)
        pods = self._pods(cluster, job)
        succeeded = sum(1 for pod in pods if dig(pod, "status", "phase") == "Succeeded")
        failed = sum(1 for pod in pods if dig(pod, "status", "phase") == "Failed")
        active = [pod for pod in pods if dig(pod, "status", "phase") in ("Pending", "Running")]
        deadline = spec.get("activeDeadlineSeconds")
        started = parse_time(status["startTime"])
        if succeeded >= int(spec.get("completions") or 1):
            status["conditions"] = [
                _condition("SuccessCriteriaMet", "CompletionsReached", "Reached expected number of succeeded pods", now),
                _condition("Complete", "CompletionsReached", "Reached expected number of succeeded pods", now),
            ]
            status["completionTime"] = format_time(now)
        elif failed > int(spec.get("backoffLimit", DEFAULT_BACKOFF_LIMIT)):
            status["conditions"] = _failed("BackoffLimitExceeded", "Job has reached the specified backoff limit", now)
        elif deadline is not None and now - started >= timedelta(seconds=int(deadline)):
            for pod in active:
                self.store.delete(cluster, PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])
            active = []
            status["conditions"] = _failed("DeadlineExceeded", "Job was active longer than specified deadline", now)
        elif not active and not spec.get("suspend"):
            active = [self._create_pod(cluster, job)]
        status.update(active=len(active), ready=sum(1 for pod in active if dig(pod, "status", "phase") == "Running"), terminating=0)
        status.update(uncountedTerminatedPods={})
        for field, count in (("succeeded", succeeded), ("failed", failed)):
            if count:
                status[field] = count
        if not status["active"]:
            status.pop("active")
        updated = deep_copy(job)
        updated["status"] = status
        self.store.update(cluster, JOBS, updated)

    def _expire(self, cluster: str, job: JsonObject) -> None:
        ttl = job["spec"].get("ttlSecondsAfterFinished")
        finished = _finished_at(job)
        if ttl is None or finished is None or self.store.clock.now() - finished < timedelta(seconds=int(ttl)):
            return
        self.store.delete(cluster, JOBS, job["metadata"]["namespace"], job["metadata"]["name"])
        release_pods(self.store, cluster, job, delete=True)

    def _pods(self, cluster: str, job: JsonObject) -> list[JsonObject]:
        uid = job["metadata"]["uid"]
        pods = self.store.list(cluster, PODS, job["metadata"]["namespace"])
        return [pod for pod in pods if any(ref.get("uid") == uid for ref in pod["metadata"].get("ownerReferences") or [])]

    def _create_pod(self, cluster: str, job: JsonObject) -> JsonObject:
        template = job["spec"]["template"]
        meta = job["metadata"]
        pod: JsonObject = {
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": {
                "name": f"{meta['name']}-{self.store.random_suffix()}",
                "generateName": f"{meta['name']}-",
                "namespace": meta["namespace"],
                "labels": dict(dig(template, "metadata", "labels") or {}),
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {**deep_copy(template["spec"]), "nodeName": f"{cluster}-worker-1"},
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]},
        }
        pod["spec"].setdefault("serviceAccountName", "default")
        created = self.store.create(cluster, PODS, pod)
        self.store.create(
            cluster, POD_LOGS, {"metadata": {"name": created["metadata"]["name"], "namespace": meta["namespace"]}, "lines": []}
        )
        return created

    def _advance(self, cluster: str, pod: JsonObject) -> None:
        """One tick of the pod's only (first) container: start it, print, exit when its ticks are up."""
        now = self.store.clock.now()
        container = (pod["spec"].get("containers") or [{}])[0]
        program = _Program.of(container)
        namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        log = self.store.get(cluster, POD_LOGS, namespace, name) or {"metadata": {"name": name, "namespace": namespace}, "lines": []}
        status = dict(pod.get("status") or {})
        if status.get("phase") == "Pending":
            status.update(phase="Running", startTime=format_time(now))
            status["containerStatuses"] = [_container_status(container, {"running": {"startedAt": format_time(now)}}, ready=True)]
            log.update(lines=program.header(), ticks=0)
        else:
            ticks = int(log.get("ticks") or 0) + 1
            log.update(lines=[*log["lines"], *program.output(ticks)], ticks=ticks)
            if ticks >= program.ticks:
                started = dig(status, "containerStatuses", "0", "state", "running", "startedAt") or format_time(now)
                terminated = {"exitCode": program.exit_code, "reason": "Completed" if program.exit_code == 0 else "Error",
                              "startedAt": started, "finishedAt": format_time(now)}  # fmt: skip
                status["phase"] = "Succeeded" if program.exit_code == 0 else "Failed"
                status["containerStatuses"] = [_container_status(container, {"terminated": terminated}, ready=False)]
        self._store_log(cluster, log)
        updated = deep_copy(pod)
        updated["status"] = status
        self.store.update(cluster, PODS, updated)

    def _store_log(self, cluster: str, log: JsonObject) -> None:
        meta = log["metadata"]
        if self.store.get(cluster, POD_LOGS, meta["namespace"], meta["name"]) is None:
            self.store.create(cluster, POD_LOGS, log)
        else:
            self.store.update(cluster, POD_LOGS, log)


class _Program:
    """What a fake job container does, read from its ``FAKE_JOB_*`` env variables."""

    def __init__(self, command: Sequence[str], env: dict[str, str], image: str) -> None:
        self.command, self.env, self.image = list(command), env, image
        self.ticks = max(1, _int(env.get("FAKE_JOB_TICKS"), 2))
        self.exit_code = _int(env.get("FAKE_JOB_EXIT"), 0)
        self.lines = max(0, _int(env.get("FAKE_JOB_LINES"), 3))

    @classmethod
    def of(cls, container: JsonObject) -> _Program:
        env = {str(v.get("name")): str(v.get("value", "")) for v in container.get("env") or [] if isinstance(v, dict) and "value" in v}
        command = [*(container.get("command") or []), *(container.get("args") or [])]
        return cls([str(part) for part in command], env, str(container.get("image") or ""))

    def header(self) -> list[str]:
        shown = shlex.join(self.command) if self.command else f"({self.image} entrypoint)"
        return [f"$ {shown}", *(f"{name}={value}" for name, value in self.env.items() if not name.startswith("FAKE_JOB_"))]

    def output(self, tick: int) -> list[str]:
        """The lines printed during running tick ``tick`` (1-based): an even share, the rest on the last tick."""
        share = self.lines // self.ticks
        first = (tick - 1) * share + 1
        last = self.lines if tick >= self.ticks else tick * share
        printed = [f"output line {i} of {self.lines}" for i in range(first, last + 1)]
        if tick >= self.ticks and self.exit_code != 0:
            printed.append(f"error: exiting with code {self.exit_code}")
        return printed


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default


def _container_status(container: JsonObject, state: JsonObject, *, ready: bool) -> JsonObject:
    image = str(container.get("image") or "")
    return {"name": container.get("name"), "image": image, "imageID": f"{image.split(':', maxsplit=1)[0]}@sha256:{'0' * 64}",
            "containerID": f"containerd://{'f' * 64}", "ready": ready, "restartCount": 0,
            "started": "running" in state, "state": state}  # fmt: skip


def _condition(kind: str, reason: str, message: str, now: datetime) -> JsonObject:
    stamp = format_time(now)
    return {"type": kind, "status": "True", "reason": reason, "message": message, "lastProbeTime": stamp, "lastTransitionTime": stamp}


def _failed(reason: str, message: str, now: datetime) -> list[JsonObject]:
    return [_condition("FailureTarget", reason, message, now), _condition("Failed", reason, message, now)]


def _finished_at(job: JsonObject) -> datetime | None:
    for condition in dig(job, "status", "conditions") or []:
        if condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True":
            return parse_time(str(condition["lastTransitionTime"]))
    return None
