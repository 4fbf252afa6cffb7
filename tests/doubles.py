"""Test doubles for the edges of the core (not for the core itself).

``CountingAction`` is a real registered action whose "target" is an in-memory counter:
it lets SQL, policy, approval and runner tests count executions exactly without a
backend. The notifier and replier record what a person would have seen.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

from bot.catalog.actions import Action, ActionArgs, Change, StepContext, StepResult
from bot.catalog.catalog import Catalog, load_catalog
from bot.catalog.config import TargetKind
from bot.catalog.registry import ActionRegistry, build_registry
from bot.errors import ActionFailed
from bot.messages import Message, MessageRef
from bot.requests.builtins import BUILTIN_SPECS
from bot.runs.engine import RunnerTiming
from bot.serve.wiring import OpsbotCore, build_core
from bot.settings import Settings


def _set_event() -> threading.Event:
    event = threading.Event()
    event.set()
    return event


@dataclass
class TouchState:
    """The fake target: a value, a run counter, and hooks to block or fail a run."""

    value: str = "v1"
    runs: int = 0
    fail_with: str | None = None
    started: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=_set_event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        """Back to a fresh target (tests share this module-level instance)."""
        fresh = TouchState()
        self.value, self.runs, self.fail_with = fresh.value, fresh.runs, fresh.fail_with
        self.started, self.release = fresh.started, fresh.release


STATE = TouchState()


class TouchArgs(ActionArgs):
    value: str


class CountingAction(Action[TouchArgs]):
    """Sets ``STATE.value``; counts every run; can be held (``release``) or made to fail."""

    name: ClassVar[str] = "test.touch"
    target_kind: ClassVar[TargetKind | None] = None
    args_model = TouchArgs
    mutating: ClassVar[bool] = True
    summary: ClassVar[str] = "test action"

    def plan(self, ctx: StepContext, args: TouchArgs) -> list[Change]:
        return [Change("value", STATE.value, args.value)]

    def run(self, ctx: StepContext, args: TouchArgs) -> StepResult:
        with STATE.lock:
            STATE.runs += 1
        STATE.started.set()
        while not STATE.release.is_set():
            ctx.wait(0.02)
        if STATE.fail_with:
            raise ActionFailed(STATE.fail_with)
        STATE.value = args.value
        return StepResult(summary=f"value is {args.value}")


def test_registry() -> ActionRegistry:
    registry = build_registry()
    registry.register(CountingAction)
    return registry


class FakeClock:
    """A clock tests move by hand (for expiry), starting at a fixed Wednesday noon."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self.now += delta


@dataclass
class Posted:
    channel: str
    message: Message
    thread: MessageRef | None
    ref: MessageRef


class RecordingNotifier:
    """Keeps every posted message and its latest version, like a channel would."""

    def __init__(self) -> None:
        self.posts: list[Posted] = []
        self.current: dict[MessageRef, Message] = {}
        self.uploads: list[tuple[str, str, str | bytes]] = []
        self._lock = threading.Lock()
        self._counter = 0

    def post(self, channel: str, message: Message, *, thread: MessageRef | None = None) -> MessageRef | None:
        with self._lock:
            self._counter += 1
            ref = MessageRef(channel, f"{self._counter}.0001")
            self.posts.append(Posted(channel, message, thread, ref))
            self.current[ref] = message
            return ref

    def update(self, ref: MessageRef, message: Message) -> None:
        with self._lock:
            self.current[ref] = message

    def upload(self, channel: str, title: str, content: str | bytes, *, thread: MessageRef | None = None) -> None:
        with self._lock:
            self.uploads.append((channel, title, content))

    def in_channel(self, channel: str) -> Iterator[Posted]:
        return (post for post in list(self.posts) if post.channel == channel)


class RecordingReplier:
    """Private replies to the person who acted."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    def private(self, message: Message) -> None:
        self.messages.append(message)

    @property
    def last(self) -> str:
        return self.messages[-1].text if self.messages else ""


TOUCH_RUNBOOK = """\
name: touch
description: Set the test value.
usage: touch {service} {value} [in {env}]
parameters:
  service: {type: service}
  value: {type: string, pattern: "[a-z0-9.]{1,20}"}
  env: {type: env}
steps:
  - name: Touch
    action: test.touch
    args: {value: "{value}"}
timeout: 2m
examples: [touch svc v2 in production]
"""


def touch_config(approvals: int = 1, approvers: int = 50, extra_services: int = 0) -> str:
    approver_ids = ", ".join(f"U0A{index:02d}" for index in range(approvers))
    extra = "".join(
        f"  svc{index}:\n    default_env: production\n    environments:\n      production:\n"
        f"        kubernetes: {{context: none, namespace: ns, deployment: svc{index}}}\n"
        for index in range(extra_services)
    )
    rule_approvals = f"      approvals: {{count: {approvals}, approvers: [approvers], expires_in: 10m}}\n" if approvals else ""
    return f"""\
users: {{U0REQ: requester, U0A00: approver0, U0A01: approver1, U0OUT: outsider}}
groups:
  approvers: [{approver_ids}]
  requesters: [U0REQ, U0A00, U0A01]
channels: {{incident: C0INCIDENT}}
services:
  svc:
    default_env: production
    environments:
      production:
        kubernetes: {{context: none, namespace: ns, deployment: svc}}
{extra}policy:
  rules:
    - runbooks: [touch, lock, unlock]
      envs: [production]
      allow: {{groups: [requesters]}}
{rule_approvals}"""


def make_touch_app(
    tmp_path: Path,
    database_url: str,
    clock: FakeClock,
    *,
    approvals: int = 1,
    notifier: RecordingNotifier | None = None,
    max_backlog: int = 1_000,
    extra_services: int = 0,
) -> tuple[OpsbotCore, RecordingNotifier]:
    """An app on the given database with the ``touch`` runbook and a recording notifier."""
    STATE.reset()
    (tmp_path / "runbooks").mkdir(exist_ok=True)
    (tmp_path / "runbooks" / "touch.yaml").write_text(TOUCH_RUNBOOK)
    (tmp_path / "opsbot.yaml").write_text(touch_config(approvals, extra_services=extra_services))
    catalog: Catalog = load_catalog(tmp_path / "opsbot.yaml", tmp_path / "runbooks", builtins=BUILTIN_SPECS, registry=test_registry())
    recorder = notifier or RecordingNotifier()
    settings = Settings(OPSBOT_DATABASE_URL=database_url, OPSBOT_INSTANCE_ID="test-runner", OPSBOT_MAX_BACKLOG=max_backlog)
    timing = RunnerTiming(lease=timedelta(seconds=30), heartbeat_seconds=0.05, lease_renew_every=2)
    app = build_core(settings, notifier=recorder, catalog=catalog, clock=clock, timing=timing)
    return app, recorder
