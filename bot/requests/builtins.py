"""Every built-in command, declared once: its grammar spec, its handler, and whether it only reads.

Built-ins share the runbook grammar (usage line + typed parameters), so ``help`` and the
parser treat them exactly like runbooks. Read-only built-ins answer the asker privately and
change nothing, so a replayed delivery of one is harmless and skips the replay check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bot.messages import Replier
from bot.requests import builtin_can_i, builtin_insights, builtin_locks, builtin_requests, builtin_watch
from bot.requests.desk import Desk
from bot.requests.invocation import Invocation
from commands.parser import CommandRequest
from commands.spec import CommandSpec, Param

BuiltinHandler = Callable[[Desk, CommandRequest, Invocation, Replier], None]

_SERVICE = Param(type="service", help="a service from the catalog")
_ENV = Param(type="env", help="an environment of the service")
_REQUEST = Param(type="int", min=1, max=2_000_000_000, help="a request number, as in #12")


@dataclass(frozen=True)
class Builtin:
    """A command that is not a runbook."""

    spec: CommandSpec
    handle: BuiltinHandler
    read_only: bool


BUILTINS: tuple[Builtin, ...] = (
    Builtin(
        CommandSpec(
            name="help",
            description="List the commands, or explain one.",
            usage="help [{command}]",
            parameters={"command": Param(type="string", pattern=r"[A-Za-z0-9_-]{1,40}", help="a command name")},
            examples=("help", "help deploy"),
            builtin=True,
        ),
        builtin_requests.show_help,
        read_only=True,
    ),
    Builtin(
        CommandSpec(
            name="history",
            description="Recent requests and what happened to them.",
            usage="history [{service}] [in {env}]",
            parameters={
                "service": _SERVICE,
                "env": Param(type="env", help="an environment", default="*"),
                "limit": Param(type="int", min=1, max=50, default=10, help="how many requests"),
            },
            examples=("history", "history checkout", "history checkout in production limit=20"),
            builtin=True,
        ),
        builtin_requests.show_history,
        read_only=True,
    ),
    Builtin(
        CommandSpec(
            name="approvals",
            description="Requests waiting for an approval.",
            usage="approvals",
            examples=("approvals",),
            builtin=True,
        ),
        builtin_requests.show_waiting,
        read_only=True,
    ),
    Builtin(
        CommandSpec(
            name="show",
            description="One request: its parameters, plan, approvals and steps.",
            usage="show {request}",
            parameters={"request": _REQUEST},
            examples=("show 12",),
            builtin=True,
        ),
        builtin_requests.show_request,
        read_only=True,
    ),
    Builtin(
        CommandSpec(
            name="cancel",
            description="Cancel your pending request, or stop a running one.",
            usage="cancel {request}",
            parameters={"request": _REQUEST},
            examples=("cancel 12",),
            builtin=True,
        ),
        builtin_requests.cancel_request,
        read_only=False,
    ),
    Builtin(
        CommandSpec(
            name="lock",
            description="Stop anyone from acting on a service/env until you unlock it or it expires.",
            usage="lock {service} [in {env}] [for {duration}] [--reason {reason}]",
            parameters={
                "service": _SERVICE,
                "env": _ENV,
                "duration": Param(type="duration", default=3_600, help="how long, like 30m or 2h"),
                "reason": Param(type="string", pattern=r"[^\n]{1,200}", help="why, shown to others"),
            },
            examples=('lock checkout in production --reason "db migration"', "lock checkout in staging for 2h"),
            builtin=True,
        ),
        builtin_locks.lock_target,
        read_only=False,
    ),
    Builtin(
        CommandSpec(
            name="unlock",
            description="Release an explicit lock on a service/env.",
            usage="unlock {service} [in {env}]",
            parameters={"service": _SERVICE, "env": _ENV},
            examples=("unlock checkout in production",),
            builtin=True,
        ),
        builtin_locks.unlock_target,
        read_only=False,
    ),
    Builtin(
        CommandSpec(
            name="digest",
            description="Post a health digest now (to this channel, or the one named).",
            usage="digest [{channel}]",
            parameters={"channel": Param(type="string", pattern=r"[#A-Za-z0-9_.-]{1,80}", help="a channel")},
            examples=("digest",),
            builtin=True,
        ),
        builtin_watch.post_digest,
        read_only=False,
    ),
    Builtin(
        CommandSpec(
            name="can-i",
            description="Would opsbot's policy and the cluster let you run a command? Nothing runs.",
            usage="can-i {command}",
            parameters={"command": Param(type="string", help="a runbook command, as you would type it")},
            examples=("can-i deploy checkout 1.4.2 to production", "can-i scale checkout to 4 in staging"),
            builtin=True,
            wraps_command=True,
        ),
        builtin_can_i.can_i,
        read_only=True,
    ),
    Builtin(
        CommandSpec(
            name="insights",
            description="Delivery figures (deploys, change failure rate, time to restore, waits) against the previous window.",
            usage="insights [{service}] [{env}] [{window}]",
            parameters={
                "service": _SERVICE,
                "env": Param(type="env", help="an environment of the service (all if left out)", default="*"),
                "window": Param(type="duration", min=86_400, max=366 * 86_400, help="how many days, like 7d (default 28d)"),
            },
            examples=("insights", "insights checkout", "insights checkout production 7d"),
            builtin=True,
        ),
        builtin_insights.show_insights,
        read_only=True,
    ),
)

BUILTINS_BY_NAME: dict[str, Builtin] = {builtin.spec.name: builtin for builtin in BUILTINS}
BUILTIN_SPECS: dict[str, CommandSpec] = {builtin.spec.name: builtin.spec for builtin in BUILTINS}
"""What the grammar and ``opsbot validate`` need (runbooks may not take these names)."""
