"""Every built-in command: its grammar spec (``bot.requests.builtin_specs``), its handler, and whether it only reads.

Built-ins share the runbook grammar (usage line + typed parameters), so ``help`` and the
parser treat them exactly like runbooks. Read-only built-ins answer the asker privately and
change nothing, so a replayed delivery of one is harmless and skips the replay check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bot.messages import Replier
from bot.requests import builtin_can_i, builtin_insights, builtin_locks, builtin_requests, builtin_watch
from bot.requests.builtin_specs import BUILTIN_SPECS
from bot.requests.desk import Desk
from bot.requests.invocation import Invocation
from commands.parser import CommandRequest
from commands.spec import CommandSpec

BuiltinHandler = Callable[[Desk, CommandRequest, Invocation, Replier], None]

__all__ = ["BUILTINS", "BUILTINS_BY_NAME", "BUILTIN_SPECS", "Builtin", "BuiltinHandler"]


@dataclass(frozen=True)
class Builtin:
    """A command that is not a runbook."""

    spec: CommandSpec
    handle: BuiltinHandler
    read_only: bool


_HANDLERS: tuple[tuple[str, BuiltinHandler, bool], ...] = (
    # name, handler, read-only
    ("help", builtin_requests.show_help, True),
    ("history", builtin_requests.show_history, True),
    ("approvals", builtin_requests.show_waiting, True),
    ("show", builtin_requests.show_request, True),
    ("cancel", builtin_requests.cancel_request, False),
    ("lock", builtin_locks.lock_target, False),
    ("unlock", builtin_locks.unlock_target, False),
    ("digest", builtin_watch.post_digest, False),
    ("can-i", builtin_can_i.can_i, True),
    ("insights", builtin_insights.show_insights, True),
)

BUILTINS: tuple[Builtin, ...] = tuple(Builtin(BUILTIN_SPECS[name], handle, read_only) for name, handle, read_only in _HANDLERS)
BUILTINS_BY_NAME: dict[str, Builtin] = {builtin.spec.name: builtin for builtin in BUILTINS}
