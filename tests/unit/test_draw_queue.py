"""The board's draw queue: a slow Slack gets the newest state of a message, and its final state last.

The drawing function here stands in for Slack (it records what it was asked to draw and can be
held, like a ``chat.update`` waiting on Slack); the queue itself is the real one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from bot.requests.draw_queue import DrawQueue
from bot.runs.run_view import RunView, StepView
from bot.store.models import RequestRow
from bot.store.states import RequestState


class SlowSlack:
    """Records each draw as (request id, state, step states); holds every draw until ``release``."""

    def __init__(self) -> None:
        self.drawn: list[tuple[int, str, tuple[str, ...]]] = []
        self.in_flight = threading.Event()
        self.gate = threading.Event()
        self.fail_first = False

    def draw(self, row: RequestRow, run: RunView | None) -> None:
        self.in_flight.set()
        self.gate.wait(10)
        self.drawn.append((row.id, str(row.state), tuple(step.state for step in run.steps) if run else ()))
        if self.fail_first:
            self.fail_first = False
            raise RuntimeError("Slack said no")


@pytest.fixture
def slack() -> SlowSlack:
    return SlowSlack()


@pytest.fixture
def queue(slack: SlowSlack) -> Iterator[DrawQueue]:
    drawing = DrawQueue(slack.draw)
    yield drawing
    slack.gate.set()
    drawing.close()


def row(state: RequestState, request_id: int = 1) -> RequestRow:
    return RequestRow(id=request_id, state=str(state), message_ref={"channel": "C0OPS", "ts": "1.000100"})


def first_draw_in_flight(queue: DrawQueue, slack: SlowSlack, run: RunView) -> None:
    queue.submit(row(RequestState.RUNNING), run)
    assert slack.in_flight.wait(10), "the first draw never started"


def test_draws_asked_for_while_one_waits_on_slack_become_one_with_the_newest_state(queue: DrawQueue, slack: SlowSlack) -> None:
    run = RunView(steps=[StepView("Set image"), StepView("Wait")])
    first_draw_in_flight(queue, slack, run)

    for step in run.steps:
        step.state = "done"  # the run goes on meanwhile: each step asks for a redraw
        queue.submit(row(RequestState.RUNNING), run)
    slack.gate.set()

    assert queue.wait_idle(10)
    assert slack.drawn == [(1, "running", ("pending", "pending")), (1, "running", ("done", "done"))]


def test_a_state_older_than_the_final_one_is_never_drawn_after_it(queue: DrawQueue, slack: SlowSlack) -> None:
    first_draw_in_flight(queue, slack, RunView())

    queue.submit(row(RequestState.SUCCEEDED))
    queue.submit(row(RequestState.RUNNING))  # a click's redraw that read the row just before the run ended
    slack.gate.set()

    assert queue.wait_idle(10)
    assert [state for _, state, _ in slack.drawn] == ["running", "succeeded"]


def test_a_draw_that_fails_does_not_stop_the_next_one(queue: DrawQueue, slack: SlowSlack) -> None:
    slack.fail_first = True
    first_draw_in_flight(queue, slack, RunView())

    queue.submit(row(RequestState.FAILED))
    slack.gate.set()

    assert queue.wait_idle(10)
    assert [state for _, state, _ in slack.drawn] == ["running", "failed"]


def test_other_requests_are_drawn_while_one_waits_on_slack(slack: SlowSlack) -> None:
    others: list[int] = []
    drawn_other = threading.Event()

    def draw(request: RequestRow, run: RunView | None) -> None:
        if request.id == 1:
            slack.draw(request, run)
        else:
            others.append(request.id)
            drawn_other.set()

    queue = DrawQueue(draw, threads=2)
    try:
        queue.submit(row(RequestState.RUNNING, request_id=1))
        assert slack.in_flight.wait(10)
        queue.submit(row(RequestState.RUNNING, request_id=2))
        assert drawn_other.wait(10), "request 2 waited behind request 1's slow draw"
        assert others == [2]
    finally:
        slack.gate.set()
        queue.close()
