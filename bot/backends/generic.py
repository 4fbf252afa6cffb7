"""Actions that work on any target: pauses and notes between backend steps."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from bot.catalog.actions import Action, ActionArgs, StepContext, StepResult
from bot.catalog.config import TargetKind


class WaitArgs(ActionArgs):
    seconds: float = Field(gt=0, le=3_600)
    reason: str = ""


class Wait(Action[WaitArgs]):
    """Pause, e.g. to let caches warm before the next step; cancellable at any moment."""

    name: ClassVar[str] = "opsbot.wait"
    target_kind: ClassVar[TargetKind | None] = None
    args_model = WaitArgs
    mutating: ClassVar[bool] = False
    summary: ClassVar[str] = "Pause for a number of seconds (cancellable)."

    def run(self, ctx: StepContext, args: WaitArgs) -> StepResult:
        ctx.progress(f"waiting {args.seconds:g}s" + (f": {args.reason}" if args.reason else ""))
        ctx.wait(args.seconds)
        return StepResult(summary=f"waited {args.seconds:g}s")


class NoteArgs(ActionArgs):
    text: str = Field(min_length=1, max_length=2_000)


class Note(Action[NoteArgs]):
    """Add a line to the request's progress, e.g. a link to a dashboard to watch."""

    name: ClassVar[str] = "opsbot.note"
    target_kind: ClassVar[TargetKind | None] = None
    args_model = NoteArgs
    mutating: ClassVar[bool] = False
    summary: ClassVar[str] = "Show a line of text in the request's progress."

    def run(self, ctx: StepContext, args: NoteArgs) -> StepResult:
        ctx.progress(args.text)
        return StepResult(summary=args.text)


ACTIONS = [Wait, Note]
