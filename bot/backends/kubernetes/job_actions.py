"""``kubernetes.job``: run a one-off Job (a database migration, a cache rebuild) under the request's approvals and audit.

The Job comes from a CronJob's ``jobTemplate`` (``from_cronjob``, as ``kubectl create job
--from=cronjob/…``) or from an inline image and command in the runbook; a request's parameters
reach only its ``args`` and ``env`` (``job_spec.py`` says why). The plan is a server-side dry-run
create of that Job, so the cluster (and, when the target impersonates, the requester's RBAC)
refuses before anyone approves. The run creates it with ``ttlSecondsAfterFinished`` (the
cluster cleans up), waits for its Complete or Failed condition within the step's deadline, and
puts the pod's last log lines in the request's thread (a file when long). A stop or a timeout
deletes the Job and its pods (``propagationPolicy: Background``).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, ClassVar

from pydantic import Field, field_validator

from bot.backends.kubernetes.client import ClusterApi
from bot.backends.kubernetes.job_spec import (
    DNS_LABEL,
    ENV_NAME,
    MANAGED_BY,
    REQUEST_LABEL,
    REQUESTED_BY,
    RUNBOOK,
    JobOverrides,
    apply_overrides,
    cronjob_job_spec,
    inline_template,
    job_manifest,
    job_name,
    job_outcome,
    main_container,
    newest_pod,
    shown_command,
)
from bot.backends.kubernetes.step_support import cluster_api, retrying, step_target
from bot.catalog.actions import Action, ActionArgs, Change, StepContext, StepResult
from bot.catalog.config import KubernetesTarget, OpsbotConfig, TargetKind
from bot.catalog.durations import Duration
from bot.catalog.runbooks import TEMPLATE_REFERENCE
from bot.errors import ActionCancelled, ActionFailed, StepTimeout
from bot.redaction import redact, redact_text

POLL_SECONDS = 1.0
FAILURE_LINES = 5
"""Log lines quoted in a failed step's message; the whole tail goes to the thread."""
FIXED_ARGUMENTS = ("from_cronjob", "image", "command", "container", "name")
"""What runs is the runbook's choice, never a request's: no ``{parameter}`` in these."""

Scalar = str | int


class JobArgs(ActionArgs):
    from_cronjob: str | None = Field(default=None, max_length=52)
    image: str | None = Field(default=None, min_length=1, max_length=500)
    command: list[str] = Field(default_factory=list)
    args: list[Scalar] | None = None
    env: dict[str, Scalar] = Field(default_factory=dict)
    container: str | None = None
    name: str | None = Field(default=None, max_length=40)
    ttl_after_finished: Duration = timedelta(hours=1)
    backoff_limit: int | None = Field(default=None, ge=0, le=10)
    log_lines: int = Field(default=200, ge=1, le=5_000)

    @field_validator("from_cronjob", "name", "container")
    @classmethod
    def _dns_label(cls, value: str | None) -> str | None:
        if value is not None and not DNS_LABEL.match(value):
            raise ValueError(f"{value!r} is not a valid Kubernetes name (lower case letters, digits and '-')")
        return value

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, Scalar]) -> dict[str, Scalar]:
        for name in value:
            if not ENV_NAME.match(name):
                raise ValueError(f"{name!r} is not a valid environment variable name (letters, digits and _, not starting with a digit)")
        return value

    def overrides(self) -> JobOverrides:
        args = tuple(str(item) for item in self.args) if self.args is not None else None
        return JobOverrides(args=args, env=tuple((name, str(value)) for name, value in self.env.items()), container=self.container)


class JobStep(Action[JobArgs]):
    """Create a Job in the target's namespace, wait for it, and show its pod's log."""

    name: ClassVar[str] = "kubernetes.job"
    target_kind: ClassVar[TargetKind | None] = "kubernetes"
    args_model = JobArgs
    mutating: ClassVar[bool] = True
    summary: ClassVar[str] = "Run a Job (from a CronJob's template or an inline image) and wait for it; its log goes to the thread."
    cluster_access: ClassVar[tuple[str, ...]] = ("get cronjobs", "create jobs", "get jobs", "delete jobs", "list pods", "get pods/log")

    @classmethod
    def check_step(cls, args: Mapping[str, Any], config: OpsbotConfig) -> list[tuple[str, str]]:
        """``opsbot validate``: one source of the Job, and parameters only in ``args`` and ``env``."""
        problems: list[tuple[str, str]] = []
        for key in FIXED_ARGUMENTS:
            if TEMPLATE_REFERENCE.search(str(args.get(key) or "")):
                problems.append((key, f"parameters may only be used in args and env, not in {key}: a request must not choose what runs"))
        has_cronjob, has_image = args.get("from_cronjob") is not None, args.get("image") is not None
        if has_cronjob == has_image:
            key = "from_cronjob" if has_cronjob else "image"
            problems.append((key, "give either from_cronjob (copy a CronJob's job template) or image (an inline spec), exactly one"))
        if has_cronjob and args.get("command"):
            problems.append(("command", "with from_cronjob the command is the CronJob's; a step may change only args and env"))
        return problems

    def plan(self, ctx: StepContext, args: JobArgs) -> list[Change]:
        target = step_target(ctx)
        api = cluster_api(ctx)
        job_spec = self._job_spec(api, target, args)
        body = self._manifest(ctx, args, job_spec, name=self._prefix(args), generate=True)
        preview = api.create_job(target.namespace, body, dry_run=True)
        container = self._container(preview.get("spec") or {}, args)
        where = f"namespace {target.namespace} of cluster {api.cluster}"
        source = f"from cronjob {args.from_cronjob}, " if args.from_cronjob else ""
        changes = [
            Change("job", None, f"{source}image {container.get('image')} in {where}"),
            Change("command", None, redact_text(shown_command(container))),
        ]
        if args.env:
            shown = redact({name: str(value) for name, value in args.env.items()})
            changes.append(Change("env", None, ", ".join(f"{name}={value}" for name, value in shown.items())))
        return changes

    def run(self, ctx: StepContext, args: JobArgs) -> StepResult:
        target = step_target(ctx)
        api = cluster_api(ctx)
        job_spec = retrying(ctx, lambda: self._job_spec(api, target, args))
        name = job_name(self._prefix(args), ctx.request_id, secrets.token_hex(2))
        body = self._manifest(ctx, args, job_spec, name=name, generate=False)
        ctx.check()
        created = api.create_job(target.namespace, body)  # once: a create sent again after a lost answer would be a second Job
        container = self._container(created.get("spec") or {}, args)
        ctx.progress(f"job {name} created in namespace {target.namespace}: {container.get('image')}, {shown_command(container)}")
        try:
            job = self._wait(ctx, api, target.namespace, name)
        except (ActionCancelled, StepTimeout) as stopped:
            self._delete(ctx, api, target.namespace, name)
            if isinstance(stopped, StepTimeout):
                raise StepTimeout(f"job {name} did not finish in time; opsbot deleted it and its pods") from None
            raise
        pod, lines = self._log_tail(api, target.namespace, job, args.log_lines)
        outcome = job_outcome(job)
        counts = f"succeeded {job.get('status', {}).get('succeeded') or 0}, failed {job.get('status', {}).get('failed') or 0}"
        if not outcome.succeeded:
            last = f"Last lines of pod {pod}:\n" + "\n".join(lines[-FAILURE_LINES:]) if pod else "No pod is left to read a log from."
            raise ActionFailed(f"job {name} failed ({outcome.reason or 'Failed'}: {outcome.message}; pods {counts}). {last}")
        heading = f"job {name} in namespace {target.namespace}: succeeded (pods {counts})"
        shown = (f"log of pod {pod} (last {len(lines)} lines):", *lines) if pod else ("no pod log",)
        where = f"namespace {target.namespace} of cluster {api.cluster}"
        return StepResult(summary=f"job {name} succeeded in {where}", details=(heading, *shown), data={"job": name, "pod": pod})

    # -- helpers ----------------------------------------------------------------------------

    def _job_spec(self, api: ClusterApi, target: KubernetesTarget, args: JobArgs) -> dict[str, Any]:
        try:
            if args.from_cronjob is not None:
                spec = cronjob_job_spec(api.read_cronjob(target.namespace, args.from_cronjob))
                spec["template"] = apply_overrides(spec.get("template") or {}, args.overrides())
                return spec
            if args.image is None:
                raise ActionFailed("kubernetes.job needs from_cronjob or image")
            return {"template": inline_template(image=args.image, command=args.command, overrides=args.overrides())}
        except ValueError as error:
            raise ActionFailed(f"kubernetes.job in {target.describe()}: {error}") from None

    def _manifest(self, ctx: StepContext, args: JobArgs, job_spec: dict[str, Any], *, name: str, generate: bool) -> dict[str, Any]:
        labels = {MANAGED_BY: "opsbot", **({REQUEST_LABEL: str(ctx.request_id)} if ctx.request_id else {})}
        annotations = {REQUESTED_BY: ctx.actor_name, **({RUNBOOK: ctx.runbook} if ctx.runbook else {})}
        backoff = args.backoff_limit if args.backoff_limit is not None else (None if args.from_cronjob else 0)
        return job_manifest(
            name=f"{name}-" if generate else name, generate=generate, job_spec=job_spec, labels=labels, annotations=annotations,
            ttl_seconds=int(args.ttl_after_finished.total_seconds()), backoff_limit=backoff,
            active_deadline=None if generate else ctx.remaining(),
        )  # fmt: skip

    @staticmethod
    def _prefix(args: JobArgs) -> str:
        return args.name or args.from_cronjob or "opsbot-job"

    @staticmethod
    def _container(job_spec: dict[str, Any], args: JobArgs) -> dict[str, Any]:
        try:
            return main_container(job_spec, args.container)
        except ValueError as error:
            raise ActionFailed(str(error)) from None

    def _wait(self, ctx: StepContext, api: ClusterApi, namespace: str, name: str) -> dict[str, Any]:
        """Poll the Job until Complete or Failed (``ctx.wait`` raises at a Stop or the deadline)."""
        announced = False
        while True:
            job = retrying(ctx, lambda: api.read_job(namespace, name))
            if job_outcome(job).done:
                return job
            if not announced and (job.get("status") or {}).get("ready"):
                ctx.progress(f"job {name}: pod running")
                announced = True
            ctx.wait(POLL_SECONDS)

    def _delete(self, ctx: StepContext, api: ClusterApi, namespace: str, name: str) -> None:
        """Remove a Job whose run was stopped; a failure here is said, not raised over the stop that caused it."""
        try:
            api.delete_job(namespace, name)
        except ActionFailed as error:
            ctx.progress(f"could not delete job {name}: {error.user_message}")
            return
        ctx.progress(f"job {name} deleted with its pods")

    def _log_tail(self, api: ClusterApi, namespace: str, job: dict[str, Any], lines: int) -> tuple[str | None, list[str]]:
        """The newest pod of the Job and its last ``lines`` log lines, redacted."""
        selector = ",".join(
            f"{key}={value}" for key, value in (((job.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}).items()
        )
        try:
            pod = newest_pod(api.list_pods(namespace, selector)) if selector else None
            if pod is None:
                return None, []
            pod_name = str((pod.get("metadata") or {}).get("name"))
            text = api.read_pod_log(namespace, pod_name, tail_lines=lines)
        except ActionFailed as error:
            return None, [f"(log unavailable: {error.user_message})"]
        return pod_name, [redact_text(line) for line in text.splitlines()]
