"""What a run knows that the database does not: live step states and progress, and who hears about them.

The engine fills a ``RunView`` and tells a ``RunObserver`` when it changes; the board in
``bot.requests`` draws it. Nothing here knows Slack or mrkdwn.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Protocol

from bot.store.models import RequestRow

MAX_PROGRESS_LINES = 6


@dataclass
class StepView:
    """A step as shown in the request message."""

    title: str
    state: str = "pending"
    summary: str = ""


@dataclass
class RunView:
    """What the runner knows that the database does not: live step states and progress."""

    steps: list[StepView] = field(default_factory=list)
    progress: list[str] = field(default_factory=list)
    duration_seconds: float | None = None
    touched: bool = False
    """Whether a step that changes the target began: only such a failure is news for the incident channel."""

    def add_progress(self, line: str) -> None:
        self.progress.append(line)
        del self.progress[:-MAX_PROGRESS_LINES]

    def snapshot(self) -> RunView:
        """A copy as of now, for an observer that draws it later on another thread while the run goes on."""
        return dataclasses.replace(self, steps=[dataclasses.replace(step) for step in self.steps], progress=list(self.progress))


class RunObserver(Protocol):
    """Told about a run as it goes; must not raise (a failed message update never stops a run)."""

    def run_started(self, row: RequestRow, run: RunView) -> None:
        """The request is running; ``run`` lists its steps."""

    def run_progressed(self, row: RequestRow, run: RunView, *, milestone: bool) -> None:
        """A step started or finished (``milestone``), or a step reported a progress line (throttle those)."""

    def step_details(self, row: RequestRow, title: str, lines: tuple[str, ...]) -> None:
        """A step's longer output (plain text lines), for the request's thread."""

    def run_finished(self, row: RequestRow, run: RunView) -> None:
        """The run ended; ``row`` holds its final state and result."""

    def run_not_started(self, row: RequestRow) -> None:
        """The run was refused at its start (target locked, policy changed, runbook gone); nothing changed."""

    def run_interrupted(self, row: RequestRow) -> None:
        """A run whose process died was marked interrupted by the recovery sweep."""
