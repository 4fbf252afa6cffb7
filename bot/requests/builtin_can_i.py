"""``/ops can-i <runbook command>``: would opsbot let me, and would the cluster, before I ask for real.

Two gates answer: opsbot's policy (which rule, how many approvals from whom, freezes) and the
target itself as the identity the request would act as: each Kubernetes permission the
runbook's steps need, asked with a SelfSubjectAccessReview sent with the impersonation headers;
for AWS, the role, source identity and session tags AssumeRole would carry (opsbot does not
simulate IAM policies). Read-only and private; every check is audited (``access_checked``).
"""

from __future__ import annotations

from bot.audit.events import EventType
from bot.audit.factories import actor_event
from bot.catalog.config import GitopsTarget, KubernetesTarget, Target
from bot.catalog.identity import IdentityUnavailable, RequesterIdentity
from bot.errors import OpsbotError, UsageError
from bot.messages import Message, Replier, code, escape
from bot.requests.desk import Desk
from bot.requests.invocation import Invocation
from bot.requests.policy import Decision, Subject, evaluate
from bot.runs.steps import prepare_steps
from commands.parser import CommandRequest


def can_i(desk: Desk, parsed: CommandRequest, invocation: Invocation, reply: Replier) -> None:
    """Answer privately from the policy and from the target, and audit the question and the answer."""
    asked = parsed.subject
    if asked is None or asked.service is None or asked.env is None:
        raise UsageError(
            "`can-i` needs a runbook command with a service and an environment, like `can-i deploy checkout 1.4.2 to production`."
        )
    runbook = desk.catalog.runbooks[asked.command]
    target = desk.catalog.target(asked.service, asked.env)
    steps = prepare_steps(desk.catalog, runbook, target, asked.params)
    decision = evaluate(
        desk.catalog.config, desk.groups, command=runbook.name, runbook=runbook, service=asked.service, env=asked.env,
        params=dict(asked.params), subject=Subject(invocation.actor.user_id, invocation.channel), now=desk.clock(),
    )  # fmt: skip
    lines = [f"*Can you* `{escape(invocation.text.partition(' ')[2] or asked.command)}`?", _policy_line(decision, asked.env)]
    cloud: list[str]
    checks: list[dict[str, object]] = []
    try:
        identity = (
            desk.identities.for_target(invocation.actor.user_id, target.identity)
            if desk.identities and not isinstance(target, GitopsTarget)
            else None
        )
    except IdentityUnavailable as error:
        identity, cloud = None, [f"*Identity:* opsbot cannot act as you: {escape(str(error))}"]
    else:
        if isinstance(target, KubernetesTarget):
            needs = [need for step in steps for need in step.action.cluster_access]
            cloud, checks = _cluster_lines(desk, target, identity, needs)
        else:
            cloud = _aws_lines(target, identity, runbook.name)
    lines += cloud
    reply.private(Message.plain("\n".join(lines)))
    desk.audit_writer.append(
        actor_event(
            EventType.ACCESS_CHECKED, invocation.actor, channel=invocation.channel, runbook=runbook.name, service=asked.service,
            env=asked.env, params=dict(asked.params), outcome="allowed" if decision.allowed else "denied",
            rule=decision.rule or "", checks=checks, identity=identity.as_audit() if identity else {"mode": "service"},
        )
    )  # fmt: skip


def _policy_line(decision: Decision, env: str) -> str:
    if not decision.allowed:
        return f"*opsbot's policy:* no. {decision.reason}"
    rule = f" (rule {escape(decision.rule)})" if decision.rule else ""
    return f"*opsbot's policy:* yes{rule}; {escape(decision.approval.describe(env).rstrip('.'))}."


def _cluster_lines(
    desk: Desk, target: KubernetesTarget, identity: RequesterIdentity | None, needs: list[str]
) -> tuple[list[str], list[dict[str, object]]]:
    who = f"you ({escape(identity.describe())})" if identity else "opsbot's own account (this target does not impersonate)"
    lines = [f"*Cluster {escape(target.cluster_key or 'in-cluster')}, as {who}:*"]
    if not needs or desk.backends is None:
        return [*lines, "• nothing to check"], []
    try:
        answers = desk.backends.kubernetes.review_access(target, identity, needs)
    except OpsbotError as error:
        return [*lines, f"• could not ask the cluster: {escape(error.user_message)}"], []
    checks: list[dict[str, object]] = []
    for answer in answers:
        mark = "✅" if answer.allowed else "❌"
        why = f" — {escape(answer.reason)}" if answer.reason else ""
        lines.append(f"{mark} {code(answer.check.describe())}{why}")
        checks.append({"check": answer.check.describe(), "allowed": answer.allowed})
    return lines, checks


def _aws_lines(target: Target, identity: RequesterIdentity | None, runbook: str) -> list[str]:
    role = getattr(target, "role_arn", None)
    if role is None:
        return ["*AWS:* opsbot's own credentials (no role_arn on this target): CloudTrail sees opsbot, not you."]
    if identity is None:
        return [f"*AWS:* assumes {code(role)} as opsbot with a session name naming you (this target does not impersonate)."]
    tags = ", ".join(f"{key}={value}" for key, value in identity.session_tags(runbook, None).items())
    return [
        f"*AWS:* assumes {code(role)} with SourceIdentity {code(identity.source_identity)} and session tags {code(tags)} "
        "(opsbot-request is the new request's number); IAM decides what the role may do."
    ]
