"""Preparing a runbook's steps for one target: which apply, their arguments, their context."""

from __future__ import annotations

import re
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from bot.backends import Backends
from bot.backends.source.whats_changing import whats_changing
from bot.catalog.actions import Action, ActionArgs, Change, StepContext
from bot.catalog.catalog import Catalog
from bot.catalog.config import KIND_NAMES, GitopsTarget, KubernetesTarget, Target
from bot.catalog.identity import IdentityMap, IdentityUnavailable, RequesterIdentity
from bot.catalog.runbooks import TEMPLATE_REFERENCE, Runbook, StepSpec
from bot.errors import ActionFailed, UsageError
from commands.values import ParamValue

PLAN_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class PreparedStep:
    """A step ready to run: the action instance and its validated arguments."""

    spec: StepSpec
    action: Action[Any]
    args: ActionArgs


def prepare_steps(catalog: Catalog, runbook: Runbook, target: Target, params: dict[str, ParamValue]) -> list[PreparedStep]:
    """Steps whose action applies to this kind of target, with arguments rendered and validated.

    A runbook with backend steps but none for this kind of target is refused here, before
    any plan: running only its generic steps (notes, waits) would report success for work
    that never happened.
    """
    kinds = sorted({kind for name in (step.action for step in runbook.steps) if (kind := _kind(catalog, name))})
    if kinds and target.kind not in kinds:
        raise UsageError(
            f"`{runbook.name}` has no step for {KIND_NAMES.get(target.kind, target.kind)} targets "
            f"({target.describe()}); it runs on: {', '.join(kinds)}."
        )
    prepared: list[PreparedStep] = []
    for spec in runbook.steps:
        if not catalog.registry.applies_to(spec.action, target.kind):
            continue
        action = catalog.registry.create(spec.action)
        try:
            args = action.args_model.model_validate(render_args(spec.args, params, url_args=action.url_args))
        except ValidationError as error:
            first = error.errors(include_url=False)[0]
            where = ".".join(str(part) for part in first["loc"])
            raise UsageError(f"Step {spec.title!r}: argument {where}: {first['msg']}.") from None
        prepared.append(PreparedStep(spec, action, args))
    if not prepared:
        raise UsageError(f"`{runbook.name}` has no steps for {target.describe()}.")
    return prepared


def render_args(args: dict[str, Any], params: dict[str, ParamValue], *, url_args: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Fill ``{param}`` templates, in nested mappings and lists too; a value that is exactly one template keeps its type.

    Values go into the arguments as data, never into a string that is parsed again: a JSON body is
    built from the rendered structure, so a parameter cannot break out of its field. In ``url_args``
    a value substituted into a URL is percent-encoded (``/``, ``?``, ``#``, ``..`` included), so a
    parameter can fill a path segment but never change where the URL points.
    """
    return {key: _render(value, params, quote_values=key in url_args) for key, value in args.items()}


def _render(value: Any, params: dict[str, ParamValue], *, quote_values: bool) -> Any:
    if isinstance(value, dict):
        return {key: _render(item, params, quote_values=quote_values) for key, item in value.items()}
    if isinstance(value, list):
        return [_render(item, params, quote_values=quote_values) for item in value]
    if not isinstance(value, str):
        return value
    whole = TEMPLATE_REFERENCE.fullmatch(value)
    if whole is not None and not quote_values:
        return params.get(whole.group(1))

    def substitute(found: re.Match[str]) -> str:
        text = _text(params.get(found.group(1)))
        return urllib.parse.quote(text, safe="") if quote_values else text

    return TEMPLATE_REFERENCE.sub(substitute, value)


def make_context(
    *,
    request_id: int,
    service: str,
    env: str,
    target: Target,
    actor_id: str,
    actor_name: str,
    backends: Backends,
    progress: Callable[[str], None],
    cancel_event: threading.Event | None = None,
    timeout_seconds: float = PLAN_TIMEOUT_SECONDS,
    identity: RequesterIdentity | None = None,
    runbook: str = "",
    approvers: tuple[tuple[str, str], ...] = (),
) -> StepContext:
    return StepContext(
        request_id=request_id,
        service=service,
        env=env,
        target=target,
        actor_id=actor_id,
        actor_name=actor_name,
        backends=backends,
        progress=progress,
        cancel_event=cancel_event or threading.Event(),
        deadline=time.monotonic() + timeout_seconds,
        identity=identity,
        runbook=runbook,
        approvers=approvers,
    )


def requester_identity(identities: IdentityMap | None, user_id: str, target: Target) -> RequesterIdentity | None:
    """Who the cloud sees for this requester on this target (None: opsbot itself); unmappable is a clear failure."""
    if identities is None or isinstance(target, GitopsTarget):
        return None  # a gitops change is a commit by opsbot whose trailers name the requester and approvers
    try:
        return identities.for_target(user_id, target.identity)
    except IdentityUnavailable as error:
        raise ActionFailed(f"opsbot cannot act as you on {target.describe()}: {error}") from None


def effective_identity(ctx: StepContext) -> dict[str, object]:
    """What the audit log records for a step: the identity the cloud saw."""
    target, identity = ctx.target, ctx.identity
    if isinstance(target, KubernetesTarget):
        if identity is None:
            return {"mode": "service", "kubernetes_user": "opsbot (its own credentials)"}
        return {"mode": "impersonate", **identity.as_audit(), "impersonate_extra": identity.impersonation_extra(ctx.request_id)}
    if isinstance(target, GitopsTarget):
        return {"mode": "service", "git": "commits by opsbot; Requested-by and Approved-by trailers name the people"}
    role = target.role_arn or "none (base credentials)"
    if identity is None or target.role_arn is None:
        return {"mode": "service", "aws_role_arn": role}
    return {
        "mode": "impersonate", "aws_role_arn": role, "source_identity": identity.source_identity,
        "session_tags": identity.session_tags(ctx.runbook, ctx.request_id),
    }  # fmt: skip


def build_plan(steps: list[PreparedStep], ctx: StepContext) -> list[Change]:
    """What the mutating steps would change, read without changing anything."""
    changes: list[Change] = []
    for step in steps:
        if step.action.mutating:
            changes.extend(step.action.plan(ctx, step.args))
    return changes


def plan_for_approval(steps: list[PreparedStep], ctx: StepContext) -> list[Change]:
    """The plan an approver sees: what the steps change, then what's changing with them (commits, image, checks).

    Only the request's first plan asks GitHub and the registry; a run compares the steps' plan
    again and keeps these context entries as they were approved (``approved_context``).
    """
    changes = build_plan(steps, ctx)
    return [*changes, *whats_changing(ctx, changes)]


def approved_context(plan: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The context entries of a stored plan, as shown when it was approved."""
    return [item for item in plan if item.get("context")]


def is_mutating(steps: list[PreparedStep]) -> bool:
    return any(step.action.mutating for step in steps)


def _kind(catalog: Catalog, action_name: str) -> str | None:
    action = catalog.registry.get(action_name)
    return action.target_kind if action is not None else None


def _text(value: ParamValue) -> str:
    return "" if value is None else str(value)
