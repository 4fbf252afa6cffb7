"""A real opsbot server for tests, and a Slack client that talks to it the way Slack does.

``serve_opsbot(settings, core_factory=...)`` starts ``bot.serve.asgi.build_server`` under
uvicorn (uvloop + httptools, as in production) on a free port in a background thread and
yields a ``RunningServer``: its base URL, the core it built, and ``slack_user(...)`` to send
signed slash commands and button clicks over real HTTP. Point the settings at a
``FakeSlackApi`` (``slack_settings``) and the bot's Web API calls land there.

Reuse for other end-to-end tests (Kubernetes, AWS)::

    settings = slack_settings(slack, database_url=url, config_path=cfg, runbooks_dir=rbs)
    with serve_opsbot(settings) as server:
        user = server.slack_user(slack, "U0ALICE")
        user.command("deploy checkout 1.4.2 to production")
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlencode

import httpx
import uvicorn
from slack_sdk.models.blocks import Block

from bot.catalog.actions import Action, ActionArgs, StepContext, StepResult
from bot.catalog.catalog import Catalog, load_catalog
from bot.catalog.config import TargetKind
from bot.catalog.registry import ActionRegistry
from bot.messages import ButtonAction, Notifier
from bot.requests.builtins import BUILTIN_SPECS
from bot.requests.groups import ExternalGroupResolver
from bot.runs.engine import RunnerTiming
from bot.serve.asgi import build_server
from bot.serve.connections import uvicorn_options
from bot.serve.wiring import CoreFactory, OpsbotCore, ServingBot, build_core, default_core
from bot.settings import Settings
from bot.store import requests as request_store
from bot.store.database import Database
from bot.store.migrate import upgrade
from fakes.slack import RESPONSE_URL_CALL, FakeSlackApi, Message, RecordedCall
from tests.doubles import STATE, TOUCH_RUNBOOK, test_registry

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT_TOKEN = "xoxb-opsbot-test"
TEAM_ID = "T0FAKE"
CHANNEL = "C0OPS"
USERS = {
    "U0REQ": "requester",
    "U0A00": "approver0",
    "U0A01": "approver1",
    "U0OUT": "outsider",
    "U0GRP": "grouped",
}
CHANNELS = {CHANNEL: "ops", "C0INCIDENT": "incident"}
USERGROUPS = {"S0ONCALL": ("platform-oncall", ["U0GRP"])}
FAST_TIMING = RunnerTiming(lease=timedelta(seconds=30), heartbeat_seconds=0.05, lease_renew_every=2)
T = TypeVar("T")
MESSAGE_METHODS = ("chat.postMessage", "chat.update", "chat.postEphemeral", RESPONSE_URL_CALL)


# -- signing ---------------------------------------------------------------------------------


def slack_signature(secret: str, timestamp: str, body: bytes | str) -> str:
    """``v0=`` + HMAC-SHA256(secret, ``v0:{timestamp}:{body}``), exactly as Slack signs requests."""
    raw = body.encode("utf-8") if isinstance(body, str) else body
    base = b"v0:" + timestamp.encode("ascii") + b":" + raw
    return "v0=" + hmac.new(secret.encode("utf-8"), base, hashlib.sha256).hexdigest()


def signed_headers(secret: str, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": slack_signature(secret, stamp, body),
    }


# -- the catalog used by the Slack tests ------------------------------------------------------


class ReportArgs(ActionArgs):
    lines: int


class ReportAction(Action[ReportArgs]):
    """A read-only step whose details are ``lines`` long lines: long output without a backend."""

    name: ClassVar[str] = "test.report"
    target_kind: ClassVar[TargetKind | None] = None
    args_model = ReportArgs
    mutating: ClassVar[bool] = False
    summary: ClassVar[str] = "prints a report"

    def run(self, ctx: StepContext, args: ReportArgs) -> StepResult:
        details = tuple(f"line {index:04d} <&> " + "x" * 60 for index in range(args.lines))
        return StepResult(summary=f"{args.lines} lines", details=details)


REPORT_RUNBOOK = """\
name: report
description: Print a report of the given length.
usage: report {service} {lines} [in {env}]
parameters:
  service: {type: service}
  lines: {type: int, min: 1, max: 5000}
  env: {type: env}
steps:
  - name: Report
    action: test.report
    args: {lines: "{lines}"}
timeout: 2m
examples: [report svc 10 in production]
"""

SLACK_TEST_CONFIG = """\
users: {U0REQ: requester, U0A00: approver0, U0A01: approver1, U0OUT: outsider, U0GRP: grouped}
groups:
  approvers: [U0A00, U0A01, "@platform-oncall"]
  requesters: [U0REQ, U0A00, U0A01]
channels: {incident: C0INCIDENT}
services:
  svc:
    default_env: production
    environments:
      production:
        kubernetes: {context: none, namespace: ns, deployment: svc}
policy:
  rules:
    - runbooks: [touch, report, lock, unlock]
      envs: [production]
      allow: {groups: [requesters]}
      approvals: {count: 1, approvers: [approvers], expires_in: 10m}
"""


def slack_test_registry() -> ActionRegistry:
    registry = test_registry()
    registry.register(ReportAction)
    return registry


def write_touch_catalog(directory: Path, config: str = SLACK_TEST_CONFIG) -> Catalog:
    """The ``touch`` (needs one approval) and ``report`` (read-only) runbooks on service ``svc``."""
    STATE.__init__()  # type: ignore[misc]  # reset the shared fake target in place
    runbooks = directory / "runbooks"
    runbooks.mkdir(parents=True, exist_ok=True)
    (runbooks / "touch.yaml").write_text(TOUCH_RUNBOOK)
    (runbooks / "report.yaml").write_text(REPORT_RUNBOOK)
    (directory / "opsbot.yaml").write_text(config)
    return load_catalog(directory / "opsbot.yaml", runbooks, builtins=BUILTIN_SPECS, registry=slack_test_registry())


def catalog_factory(catalog: Catalog, *, timing: RunnerTiming = FAST_TIMING, clock: Callable[[], datetime] | None = None) -> CoreFactory:
    """An ``CoreFactory`` that uses ``catalog`` (with its test actions) instead of loading files (and ``clock``, if given)."""

    def factory(settings: Settings, notifier: Notifier, groups: ExternalGroupResolver) -> OpsbotCore:
        return build_core(
            settings, notifier=notifier, catalog=catalog, external_groups=groups, timing=timing, maintenance_interval=60.0,
            **({"clock": clock} if clock is not None else {}),
        )  # fmt: skip

    return factory


def slack_settings(slack: FakeSlackApi, *, database_url: str, config_path: Path, runbooks_dir: Path, **extra: Any) -> Settings:
    """Settings for a server that talks to ``slack`` and checks signatures with ``SIGNING_SECRET``."""
    values: dict[str, Any] = {
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "OPSBOT_DATABASE_URL": database_url,
        "OPSBOT_CONFIG": str(config_path),
        "OPSBOT_RUNBOOKS_DIR": str(runbooks_dir),
        "OPSBOT_INSTANCE_ID": "slack-test",
        "OPSBOT_SCHEDULER": "false",  # digests and health watches have their own tests
        # One test user often sends hundreds of commands (the fuzzers): rate limits have their own test (test_fairness.py).
        "OPSBOT_RATE_BURST": "1000000",
        "OPSBOT_RATE_PER_MINUTE": "1000000",
        **extra,
    }
    return Settings(**values)


def fake_slack() -> FakeSlackApi:
    return FakeSlackApi(token=BOT_TOKEN, users=USERS, channels=CHANNELS, usergroups=USERGROUPS)


def migrated(database_url: str) -> str:
    database = Database(database_url)
    try:
        upgrade(database)
    finally:
        database.dispose()
    return database_url


# -- the running server ------------------------------------------------------------------------


@dataclass
class RunningServer:
    """A live opsbot: where it listens and the core it built (for assertions on state)."""

    base_url: str
    bot: ServingBot
    http: httpx.Client
    signing_secret: str = SIGNING_SECRET

    @property
    def opsbot(self) -> OpsbotCore:
        """The core this server built (the tests' servers run it inline, without an executor)."""
        assert self.bot.core is not None
        return self.bot.core

    def slack_user(self, slack: FakeSlackApi, user_id: str, *, channel: str = CHANNEL) -> SlackUser:
        return SlackUser(self, slack, user_id, channel)

    def post_signed(self, body: bytes, *, timestamp: int | None = None, secret: str | None = None) -> httpx.Response:
        headers = signed_headers(secret or self.signing_secret, body, timestamp=timestamp)
        return self.http.post("/slack/events", content=body, headers=headers)

    def wait_idle(self) -> None:
        assert self.opsbot.wait_idle(timeout=30), "opsbot's worker pool did not go idle"


@contextlib.contextmanager
def serve_opsbot(settings: Settings, *, core_factory: CoreFactory = default_core) -> Iterator[RunningServer]:
    """Run ``build_server(settings)`` under uvicorn on a free port until the block ends."""
    app = build_server(settings, core_factory=core_factory)
    with serve_asgi(app, **uvicorn_options(settings)) as http:
        yield RunningServer(base_url=str(http.base_url).rstrip("/"), bot=app.state.serving, http=http)


@contextlib.contextmanager
def serve_asgi(app: Any, **options: Any) -> Iterator[httpx.Client]:
    """``app`` under uvicorn on a free port of 127.0.0.1 until the block ends: a client for it, over real HTTP."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="on", access_log=False, log_config=None, **options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="opsbot-test-server", daemon=True)
    thread.start()
    try:
        _wait_until_started(server, thread)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            yield http
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        sock.close()


def serve_touch_catalog(
    slack: FakeSlackApi,
    directory: Path,
    database_url: str,
    *,
    config: str = SLACK_TEST_CONFIG,
    clock: Callable[[], datetime] | None = None,
    **settings: Any,
) -> contextlib.AbstractContextManager[RunningServer]:
    """A server with the ``touch``/``report`` catalog written to ``directory``, on a migrated ``database_url``.

    ``config`` replaces the test opsbot.yaml; ``clock`` is the core's clock (a ``FakeClock`` for freeze windows).
    """
    catalog = write_touch_catalog(directory, config)
    values = slack_settings(
        slack, database_url=migrated(database_url), config_path=directory / "opsbot.yaml", runbooks_dir=directory / "runbooks", **settings
    )
    return serve_opsbot(values, core_factory=catalog_factory(catalog, clock=clock))


def _wait_until_started(server: uvicorn.Server, thread: threading.Thread) -> None:
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the opsbot server stopped during startup (see the log above)")
        if time.monotonic() > deadline:
            raise RuntimeError("the opsbot server did not start within 30 s")
        time.sleep(0.01)


# -- a person in Slack -------------------------------------------------------------------------


@dataclass
class SlackUser:
    """Sends what Slack sends when this person types ``/ops …`` or clicks a button."""

    server: RunningServer
    slack: FakeSlackApi
    user_id: str
    channel: str

    def command(self, text: str) -> httpx.Response:
        """``/ops <text>``: a signed form post, text escaped as Slack escapes it."""
        return self.server.post_signed(self.command_body(text))

    def command_body(self, text: str) -> bytes:
        return urlencode(command_form(self.slack, self.user_id, self.channel, text)).encode("utf-8")

    def click(self, message: Message, action: ButtonAction | str) -> httpx.Response:
        """Press the button with ``action`` on ``message`` (as it currently stands in the fake)."""
        return self.server.post_signed(self.click_body(message, action))

    def click_body(self, message: Message, action: ButtonAction | str) -> bytes:
        return form_payload(click_payload(self.slack, self.user_id, self.channel, message, action))


def command_form(slack: FakeSlackApi, user_id: str, channel: str, text: str) -> dict[str, str]:
    """The fields of a slash command (a form over HTTP, a JSON object over Socket Mode)."""
    return {
        "token": "legacy-verification-token",
        "team_id": TEAM_ID,
        "team_domain": "fake",
        "channel_id": channel,
        "channel_name": CHANNELS.get(channel, "channel"),
        "user_id": user_id,
        "user_name": USERS.get(user_id, user_id),
        "command": "/ops",
        "text": text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"),
        "api_app_id": "A0FAKE",
        "is_enterprise_install": "false",
        "response_url": slack.response_url(channel, user_id),
        "trigger_id": "1.2.3",
    }


def click_payload(slack: FakeSlackApi, user_id: str, channel: str, message: Message, action: ButtonAction | str) -> dict[str, Any]:
    """The ``block_actions`` payload of pressing ``action`` on ``message``."""
    element, block_id = find_button(message, str(action))
    return block_actions_payload(
        user_id,
        channel,
        actions=[{**element, "block_id": block_id, "action_ts": "1700000000.000100"}],
        message={"type": "message", "ts": message.ts, "text": message.text, "blocks": message.blocks or []},
        response_url=slack.response_url(channel, user_id, message_ts=message.ts),
    )


def block_actions_payload(
    user_id: str,
    channel: str,
    *,
    actions: Sequence[Any],
    message: Mapping[str, Any] | None = None,
    response_url: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """An interactivity payload as Slack builds it (``extra`` overrides any field)."""
    return {
        "type": "block_actions",
        "user": {"id": user_id, "username": USERS.get(user_id, user_id), "name": USERS.get(user_id, user_id), "team_id": TEAM_ID},
        "api_app_id": "A0FAKE",
        "token": "legacy-verification-token",
        "container": {"type": "message", "message_ts": (message or {}).get("ts"), "channel_id": channel, "is_ephemeral": False},
        "trigger_id": "1.2.3",
        "team": {"id": TEAM_ID, "domain": "fake"},
        "channel": {"id": channel, "name": CHANNELS.get(channel, "channel")},
        "message": dict(message or {}),
        "response_url": response_url,
        "actions": list(actions),
        **extra,
    }


def form_payload(payload: Mapping[str, Any]) -> bytes:
    """An interactivity request body: ``payload=<json>``, as Slack posts it."""
    return urlencode({"payload": json.dumps(payload)}).encode("utf-8")


def find_button(message: Message, action: str) -> tuple[dict[str, Any], str]:
    for block in message.blocks or []:
        if block.get("type") != "actions":
            continue
        for element in block.get("elements", []):
            if str(element.get("action_id", "")).split("#", 1)[0] == action:
                return dict(element), str(block.get("block_id", "actions"))
    raise LookupError(f"no {action} button on message {message.ts}: {message.text!r}")


# -- what Slack received -------------------------------------------------------------------------


def blocks_of(call: RecordedCall) -> list[dict[str, Any]] | None:
    raw = call.params.get("blocks")
    if raw is None:
        return None
    parsed = json.loads(raw) if isinstance(raw, str) else raw
    assert isinstance(parsed, list), f"{call.method} sent blocks that are not a list: {raw!r:.200}"
    return parsed


def assert_every_blocks_payload_valid(slack: FakeSlackApi) -> int:
    """Every message the bot sent parses and validates with slack_sdk's models; returns how many blocks."""
    checked = 0
    for call in slack.calls:
        if call.method not in MESSAGE_METHODS:
            continue
        assert call.error != "invalid_blocks", f"Slack refused blocks in {call.method}: {call.response}"
        for block in blocks_of(call) or []:
            parsed = Block.parse(block)
            assert parsed is not None, f"not a block: {block}"
            parsed.validate_json()
            checked += 1
    return checked


def wait_until(predicate: Callable[[], T | None], timeout: float = 10.0, *, what: str = "") -> T:
    """Poll ``predicate`` (database state, which cannot wake us) until it is truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {timeout}s for {what or predicate}")
        time.sleep(0.01)


def posted_request(opsbot: OpsbotCore, slack: FakeSlackApi, containing: str) -> Message:
    """The request's message, once opsbot has also stored where it lives.

    Slack answers chat.postMessage before opsbot records the message's ts; a click in
    between would find no message to redraw (a person cannot click that fast, a test can).
    """
    message = slack.wait_for(lambda: latest_message(slack, containing=containing), what=f"a message with {containing!r}")

    def stored() -> bool:
        with opsbot.database.reading() as session:
            rows = request_store.list_requests(session, limit=50)
        return any((row.message_ref or {}).get("ts") == message.ts for row in rows)

    wait_until(stored, what="opsbot to store the message's ts")
    return message


def latest_message(slack: FakeSlackApi, channel: str = CHANNEL, *, containing: str = "") -> Message:
    """The newest top-level message in ``channel`` whose text contains ``containing``."""
    for message in reversed(slack.messages(channel)):
        if message.thread_ts is None and containing in message.text:
            return message
    raise LookupError(f"no message containing {containing!r} in {channel}")
