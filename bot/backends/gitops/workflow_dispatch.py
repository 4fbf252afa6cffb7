"""``github.workflow_dispatch``: start a GitHub Actions workflow (a release, a data backfill) and wait for its conclusion.

GitHub answers a dispatch with 204 and no run id, so opsbot notes the runs it can already see,
dispatches, then looks for the new ``workflow_dispatch`` run of that workflow on that ref created
since (the oldest such run: the one this dispatch started, unless someone dispatched the same
workflow on the same ref within the same seconds). It polls the run until ``status: completed``:
conclusion ``success`` passes the step, anything else (failure, cancelled, timed_out, …) fails
it; the run's page is linked in the request's thread. A Stop or the step's timeout cancels the
run. The repository and workflow are the runbook's; a request's parameters may fill ``ref`` and
``inputs`` only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from pydantic import Field, field_validator

from bot.backends.gitops.github import GitHubClient
from bot.catalog.actions import Action, ActionArgs, Change, StepContext, StepResult
from bot.catalog.config import OpsbotConfig, TargetKind
from bot.catalog.runbooks import TEMPLATE_REFERENCE
from bot.errors import ActionCancelled, ActionFailed, StepTimeout
from bot.redaction import redact

POLL_SECONDS = 2.0
LOOKBACK = timedelta(seconds=60)
"""Runs listed around the dispatch: GitHub's ``created_at`` has whole seconds and clocks drift."""
MAX_INPUTS = 25
"""GitHub refuses a dispatch with more top-level inputs than this."""
FIXED_ARGUMENTS = ("repo", "workflow")
PASSING = frozenset({"success"})


class WorkflowDispatchArgs(ActionArgs):
    repo: str = Field(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
    workflow: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=255)
    """The workflow's file name (``release.yml``) or numeric id."""
    ref: str = Field(default="main", min_length=1, max_length=255)
    inputs: dict[str, str | int | bool] = Field(default_factory=dict)

    @field_validator("ref")
    @classmethod
    def _git_ref(cls, value: str) -> str:
        if any(character.isspace() or character in "~^:?*[\\" for character in value) or ".." in value or value.endswith("/"):
            raise ValueError(f"{value!r} is not a git branch or tag name")
        return value

    @field_validator("inputs")
    @classmethod
    def _input_count(cls, value: dict[str, str | int | bool]) -> dict[str, str | int | bool]:
        if len(value) > MAX_INPUTS:
            raise ValueError(f"GitHub accepts at most {MAX_INPUTS} inputs; this step gives {len(value)}")
        return value

    def input_strings(self) -> dict[str, str]:
        """Inputs as the workflow reads them: strings (``true``/``false`` for booleans)."""
        return {name: (str(value).lower() if isinstance(value, bool) else str(value)) for name, value in self.inputs.items()}


@dataclass(frozen=True)
class RunOutcome:
    passed: bool
    conclusion: str


class WorkflowDispatch(Action[WorkflowDispatchArgs]):
    """Dispatch a workflow, find the run it started, wait for its conclusion."""

    name: ClassVar[str] = "github.workflow_dispatch"
    target_kind: ClassVar[TargetKind | None] = None
    args_model = WorkflowDispatchArgs
    mutating: ClassVar[bool] = True
    summary: ClassVar[str] = "Start a GitHub Actions workflow with inputs and wait for its conclusion (the run is linked)."

    @classmethod
    def check_step(cls, args: Mapping[str, Any], config: OpsbotConfig) -> list[tuple[str, str]]:
        """``opsbot validate``: which repository and workflow run is the runbook's choice, never a request's."""
        return [
            (key, f"parameters may only be used in ref and inputs, not in {key}: a request must not choose what runs")
            for key in FIXED_ARGUMENTS
            if TEMPLATE_REFERENCE.search(str(args.get(key) or ""))
        ]

    def plan(self, ctx: StepContext, args: WorkflowDispatchArgs) -> list[Change]:
        workflow = _read_workflow(_client(ctx, args), args)
        changes = [Change("workflow", None, f"{args.repo} {workflow.get('name') or args.workflow} ({workflow.get('path')}) on {args.ref}")]
        if args.inputs:
            shown = redact(args.input_strings())
            changes.append(Change("inputs", None, ", ".join(f"{name}={value}" for name, value in shown.items())))
        return changes

    def run(self, ctx: StepContext, args: WorkflowDispatchArgs) -> StepResult:
        client = _client(ctx, args)
        since = _stamp(datetime.now(UTC) - LOOKBACK)
        known = {run.get("id") for run in client.workflow_runs(args.workflow, branch=args.ref, created_since=since)}
        ctx.check()
        client.dispatch_workflow(args.workflow, ref=args.ref, inputs=args.input_strings())
        ctx.progress(f"dispatched {args.workflow} on {args.ref} in {args.repo}")
        run: dict[str, Any] | None = None
        try:
            run = self._find_run(ctx, client, args, since, known)
            ctx.progress(f"run #{run.get('run_number')} {run.get('status')}: {run.get('html_url')}")
            run = self._wait(ctx, client, run)
        except (ActionCancelled, StepTimeout) as stopped:
            if run is not None:
                self._cancel(ctx, client, run)
            if isinstance(stopped, StepTimeout):
                what = f"run #{run.get('run_number')} ({run.get('html_url')}) was cancelled" if run else "no run of it had appeared"
                raise StepTimeout(f"{args.workflow} in {args.repo} did not finish in time; {what}") from None
            raise
        outcome = run_outcome(run)
        link = str(run.get("html_url"))
        if not outcome.passed:
            raise ActionFailed(f"{args.workflow} run #{run.get('run_number')} in {args.repo} concluded {outcome.conclusion}: {link}")
        return StepResult(
            summary=f"{args.workflow} run #{run.get('run_number')} in {args.repo} succeeded",
            details=(f"{args.repo} {args.workflow} on {args.ref}: run #{run.get('run_number')} {outcome.conclusion}", link),
            data={"run_id": run.get("id"), "html_url": link, "conclusion": outcome.conclusion},
        )

    def _find_run(self, ctx: StepContext, client: GitHubClient, args: WorkflowDispatchArgs, since: str, known: set[Any]) -> dict[str, Any]:
        """The oldest run of this workflow and ref that was not there before the dispatch (it may take seconds to appear)."""
        while True:
            runs = client.workflow_runs(args.workflow, branch=args.ref, created_since=since)
            fresh = [run for run in runs if run.get("id") not in known]
            if fresh:
                return min(fresh, key=lambda run: (str(run.get("created_at")), int(run.get("id") or 0)))
            ctx.wait(POLL_SECONDS)

    def _wait(self, ctx: StepContext, client: GitHubClient, run: dict[str, Any]) -> dict[str, Any]:
        status = run.get("status")
        while run.get("status") != "completed":
            ctx.wait(POLL_SECONDS)
            run = client.workflow_run(int(run["id"]))
            if run.get("status") != status:
                status = run.get("status")
                ctx.progress(f"run #{run.get('run_number')} {status}")
        return run

    def _cancel(self, ctx: StepContext, client: GitHubClient, run: dict[str, Any]) -> None:
        """Cancel a run whose request was stopped; a failure is said, not raised over the stop that caused it."""
        try:
            client.cancel_workflow_run(int(run["id"]))
        except ActionFailed as error:
            ctx.progress(f"could not cancel run #{run.get('run_number')}: {error.user_message}")
            return
        ctx.progress(f"run #{run.get('run_number')} cancelled: {run.get('html_url')}")


def run_outcome(run: Mapping[str, Any]) -> RunOutcome:
    """A completed run passes only with conclusion ``success``."""
    conclusion = str(run.get("conclusion") or "unknown")
    return RunOutcome(passed=conclusion in PASSING, conclusion=conclusion)


def _client(ctx: StepContext, args: WorkflowDispatchArgs) -> GitHubClient:
    return ctx.backends.gitops.github_repository(ctx.backends.config.github.api_url, args.repo)


def _read_workflow(client: GitHubClient, args: WorkflowDispatchArgs) -> dict[str, Any]:
    try:
        workflow = client.workflow(args.workflow)
    except ActionFailed as error:
        if "answered 404" in error.user_message:
            raise ActionFailed(
                f"no workflow {args.workflow} in {args.repo} (or opsbot's GitHub credentials cannot see that repository)"
            ) from None
        raise
    state = workflow.get("state")
    if state not in (None, "active"):
        raise ActionFailed(f"workflow {args.workflow} in {args.repo} is {state}; enable it in GitHub before running this")
    return workflow


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
