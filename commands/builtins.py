"""Commands that are not runbooks: help, history, approvals, locks, cancel, show, digest.

They share the runbook grammar (usage line + typed parameters) so ``help`` and the
parser treat them exactly like runbooks.
"""

from __future__ import annotations

from bot.runbooks.models import ParameterSpec
from commands.spec import CommandSpec

_SERVICE = ParameterSpec(type="service", help="a service from the catalog")
_ENV = ParameterSpec(type="env", help="an environment of the service")
_REQUEST = ParameterSpec(type="int", min=1, max=2_000_000_000, help="a request number, as in #12")

BUILTIN_COMMANDS: dict[str, CommandSpec] = {
    spec.name: spec
    for spec in (
        CommandSpec(
            name="help",
            description="List the commands, or explain one.",
            usage="help [{command}]",
            parameters={"command": ParameterSpec(type="string", pattern=r"[A-Za-z0-9_-]{1,40}", help="a command name")},
            examples=("help", "help deploy"),
            builtin=True,
        ),
        CommandSpec(
            name="history",
            description="Recent requests and what happened to them.",
            usage="history [{service}] [in {env}]",
            parameters={
                "service": _SERVICE,
                "env": ParameterSpec(type="env", help="an environment", default="*"),
                "limit": ParameterSpec(type="int", min=1, max=50, default=10, help="how many requests"),
            },
            examples=("history", "history checkout", "history checkout in production limit=20"),
            builtin=True,
        ),
        CommandSpec(
            name="approvals",
            description="Requests waiting for an approval.",
            usage="approvals",
            examples=("approvals",),
            builtin=True,
        ),
        CommandSpec(
            name="show",
            description="One request: its parameters, plan, approvals and steps.",
            usage="show {request}",
            parameters={"request": _REQUEST},
            examples=("show 12",),
            builtin=True,
        ),
        CommandSpec(
            name="cancel",
            description="Cancel your pending request, or stop a running one.",
            usage="cancel {request}",
            parameters={"request": _REQUEST},
            examples=("cancel 12",),
            builtin=True,
        ),
        CommandSpec(
            name="lock",
            description="Stop anyone from acting on a service/env until you unlock it or it expires.",
            usage="lock {service} [in {env}] [for {duration}] [--reason {reason}]",
            parameters={
                "service": _SERVICE,
                "env": _ENV,
                "duration": ParameterSpec(type="duration", default=3_600, help="how long, like 30m or 2h"),
                "reason": ParameterSpec(type="string", pattern=r"[^\n]{1,200}", help="why, shown to others"),
            },
            examples=('lock checkout in production --reason "db migration"', "lock checkout in staging for 2h"),
            builtin=True,
        ),
        CommandSpec(
            name="unlock",
            description="Release an explicit lock on a service/env.",
            usage="unlock {service} [in {env}]",
            parameters={"service": _SERVICE, "env": _ENV},
            examples=("unlock checkout in production",),
            builtin=True,
        ),
        CommandSpec(
            name="digest",
            description="Post a health digest now (to this channel, or the one named).",
            usage="digest [{channel}]",
            parameters={"channel": ParameterSpec(type="string", pattern=r"[#A-Za-z0-9_.-]{1,80}", help="a channel")},
            examples=("digest",),
            builtin=True,
        ),
    )
}
