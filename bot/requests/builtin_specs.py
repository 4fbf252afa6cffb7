"""The grammar of every built-in command: what ``help``, the parser and ``opsbot validate`` need.

Apart from ``bot.requests.builtins`` (which pairs each spec with its handler) so that validating
a config, or an HTTP process that only parses and acks, never imports the handlers and what they
reach (the store, the board, the backends): ``opsbot validate`` starts in a fraction of the time.
"""

from __future__ import annotations

from commands.spec import CommandSpec, Param

_SERVICE = Param(type="service", help="a service from the catalog")
_ENV = Param(type="env", help="an environment of the service")
_REQUEST = Param(type="int", min=1, max=2_000_000_000, help="a request number, as in #12")

HELP = CommandSpec(
    name="help",
    description="List the commands, or explain one.",
    usage="help [{command}]",
    parameters={"command": Param(type="string", pattern=r"[A-Za-z0-9_-]{1,40}", help="a command name")},
    examples=("help", "help deploy"),
    builtin=True,
)

HISTORY = CommandSpec(
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
)

APPROVALS = CommandSpec(
    name="approvals",
    description="Requests waiting for an approval.",
    usage="approvals",
    examples=("approvals",),
    builtin=True,
)

SHOW = CommandSpec(
    name="show",
    description="One request: its parameters, plan, approvals and steps.",
    usage="show {request}",
    parameters={"request": _REQUEST},
    examples=("show 12",),
    builtin=True,
)

CANCEL = CommandSpec(
    name="cancel",
    description="Cancel your pending request, or stop a running one.",
    usage="cancel {request}",
    parameters={"request": _REQUEST},
    examples=("cancel 12",),
    builtin=True,
)

LOCK = CommandSpec(
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
)

UNLOCK = CommandSpec(
    name="unlock",
    description="Release an explicit lock on a service/env.",
    usage="unlock {service} [in {env}]",
    parameters={"service": _SERVICE, "env": _ENV},
    examples=("unlock checkout in production",),
    builtin=True,
)

DIGEST = CommandSpec(
    name="digest",
    description="Post a health digest now (to this channel, or the one named).",
    usage="digest [{channel}]",
    parameters={"channel": Param(type="string", pattern=r"[#A-Za-z0-9_.-]{1,80}", help="a channel")},
    examples=("digest",),
    builtin=True,
)

CAN_I = CommandSpec(
    name="can-i",
    description="Would opsbot's policy and the cluster let you run a command? Nothing runs.",
    usage="can-i {command}",
    parameters={"command": Param(type="string", help="a runbook command, as you would type it")},
    examples=("can-i deploy checkout 1.4.2 to production", "can-i scale checkout to 4 in staging"),
    builtin=True,
    wraps_command=True,
)

INSIGHTS = CommandSpec(
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
)

BUILTIN_SPECS: dict[str, CommandSpec] = {
    spec.name: spec for spec in (HELP, HISTORY, APPROVALS, SHOW, CANCEL, LOCK, UNLOCK, DIGEST, CAN_I, INSIGHTS)
}
"""What the grammar and ``opsbot validate`` need (runbooks may not take these names)."""
