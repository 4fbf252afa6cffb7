"""``flags.set``: one feature flag in a JSON file (``{"flag-name": true, …}``), changed as an approved runbook step.

Everything a plugin action needs is opsbot's public action contract (``bot.catalog.actions``):
arguments declared as a pydantic model (``opsbot validate`` checks them and reports mistakes as
``file:line``), a read-only ``plan`` the approvers see, and a ``run`` that reports progress and
honours cancellation through its ``StepContext``. The entry point in ``pyproject.toml``
(group ``opsbot.actions``) is the only registration.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from bot.catalog.actions import Action, ActionArgs, Change, StepContext, StepResult
from bot.catalog.config import TargetKind
from bot.errors import ActionFailed


class FlagArgs(ActionArgs):
    file: str = Field(min_length=1, description="the JSON flag file (a shared volume, a mounted ConfigMap copy…)")
    flag: str = Field(pattern=r"^[a-z][a-z0-9-]{0,62}$")
    enabled: bool


class SetFlag(Action[FlagArgs]):
    """Turn one flag on or off; the plan shows its current and new value."""

    name: ClassVar[str] = "flags.set"
    target_kind: ClassVar[TargetKind | None] = None  # any kind of target: the flag file is not a cluster object
    args_model = FlagArgs
    mutating: ClassVar[bool] = True
    summary: ClassVar[str] = "Turn a feature flag on or off in a JSON flag file."

    def plan(self, ctx: StepContext, args: FlagArgs) -> list[Change]:
        current = _read(Path(args.file)).get(args.flag)
        return [Change(f"flag {args.flag}", _word(current), _word(args.enabled))]

    def run(self, ctx: StepContext, args: FlagArgs) -> StepResult:
        path = Path(args.file)
        flags = _read(path)
        before = flags.get(args.flag)
        ctx.check()  # cancelled or past its deadline: stop before writing anything
        flags[args.flag] = args.enabled
        _write(path, flags)
        ctx.progress(f"{args.flag}: {_word(before)} → {_word(args.enabled)}")
        return StepResult(summary=f"flag {args.flag} is {_word(args.enabled)}", data={"before": before, "after": args.enabled})


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise ActionFailed(f"cannot read the flag file {path}: {error}") from None
    if not isinstance(data, dict):
        raise ActionFailed(f"the flag file {path} must hold a JSON object of flag names")
    return data


def _write(path: Path, flags: dict[str, Any]) -> None:
    """Atomically: readers see the old file or the new one, never half of it."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(flags, handle, indent=2, sort_keys=True)
    os.replace(temporary, path)


def _word(value: object) -> str:
    return "(unset)" if value is None else ("on" if value else "off")


ACTIONS = [SetFlag]
