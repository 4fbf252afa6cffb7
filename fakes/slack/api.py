"""A fake Slack Web API server that answers like Slack, over real HTTP.

opsbot's integration tests and benchmarks point the real clients at it
(``WebClient(base_url=slack.api_url)``, Bolt's ``App(client=...)``,
``WebhookClient(response_url)``), so everything between the bot and Slack
is exercised: encodings, retries on 429 with ``Retry-After``, ``ok: false``
answers with HTTP 200, Block Kit limits, the files_upload_v2 flow and the
five-use limit of response_urls. A fake that only returned what the bot
hopes for would let all of those break silently in production.

Usage::

    with FakeSlackApi(users={"U0ALICE": "alice"}, channels={"C0OPS": "ops"}) as slack:
        client = WebClient(token=slack.token, base_url=slack.api_url)
        client.chat_postMessage(channel="C0OPS", text="hi")
        slack.wait_for(lambda: slack.messages("C0OPS"))
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import TypeVar

from .faults import ChannelBuckets, Fault
from .records import ApiError, Ephemeral, Identity, Message, RecordedCall, Upload
from .response_urls import RESPONSE_PATH, ResponseUrl
from .serving import RESPONSE_URL_CALL, UPLOAD_CALL, SlackCore
from .views import TRIGGER_LIFETIME_SECONDS, View, submission_state
from .wire import FakeHttpServer
from .workspace import Workspace

__all__ = [
    "RESPONSE_URL_CALL",
    "UPLOAD_CALL",
    "Ephemeral",
    "FakeSlackApi",
    "Message",
    "RecordedCall",
    "Upload",
    "View",
]

T = TypeVar("T")


class FakeSlackApi(SlackCore):
    """The fake server plus the handles a test needs to script and inspect it.

    Directory data is fixed at construction: ``users`` maps user ids to
    names, ``channels`` channel ids to names, ``usergroups`` group ids to
    ``(handle, member ids)``. Channels not listed (other than DMs with listed
    users) answer ``channel_not_found``, as Slack does for channels the bot
    cannot see. ``clock`` drives call timestamps, rate-limit buckets and
    response_url expiry, so a test can pass a fake clock to expire URLs.
    """

    def __init__(
        self,
        token: str = "xoxb-test",
        *,
        users: Mapping[str, str] | None = None,
        usergroups: Mapping[str, tuple[str, Sequence[str]]] | None = None,
        channels: Mapping[str, str] | None = None,
        team_id: str = "T0FAKE",
        bot_user_id: str = "U0BOT",
        bot_id: str = "B0BOT",
        realistic_rate_limits: bool = False,
        clock: Callable[[], float] = time.monotonic,
        timezones: Mapping[str, str] | None = None,
        trigger_lifetime: float = TRIGGER_LIFETIME_SECONDS,
    ) -> None:
        identity = Identity(token=token, team_id=team_id, bot_user_id=bot_user_id, bot_id=bot_id)
        super().__init__(Workspace(identity, users or {}, channels or {}, usergroups or {}), clock)
        self._server: FakeHttpServer | None = None
        self._thread: threading.Thread | None = None
        self._hook_ids = itertools.count(1)
        self.ws.views.clock = clock
        self.ws.views.trigger_lifetime = trigger_lifetime
        self.ws.timezones.update(timezones or {})
        if realistic_rate_limits:
            self.enable_realistic_rate_limits()

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> FakeSlackApi:
        """Listen on a free port of 127.0.0.1; returns self for chaining."""
        if self._server is not None:
            return self
        self.stopping.clear()
        self._server = FakeHttpServer(self)
        self.ws.base_url = f"http://127.0.0.1:{self._server.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-slack-api", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port; delayed answers are cut short."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self.stopping.set()
        self.release_all()
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeSlackApi:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` of the running server."""
        if self._server is None:
            raise RuntimeError("FakeSlackApi is not started")
        return self.ws.base_url

    @property
    def api_url(self) -> str:
        """The ``base_url`` to give slack_sdk's WebClient (ends with ``/api/``)."""
        return self.url + "/api/"

    @property
    def token(self) -> str:
        return self.ws.identity.token

    @property
    def identity(self) -> Identity:
        """Team and bot ids the fake reports (auth.test, message authors)."""
        return self.ws.identity

    # -- inspection --------------------------------------------------------------------

    @property
    def calls(self) -> list[RecordedCall]:
        """Every request so far, in arrival order (snapshots)."""
        with self.cond:
            return [dataclasses.replace(call) for call in self.recorded]

    def calls_to(self, method: str) -> list[RecordedCall]:
        """Requests to one Web API method (or ``response_url`` / ``file_upload``)."""
        return [call for call in self.calls if call.method == method]

    def messages(self, channel: str) -> list[Message]:
        """Messages currently in a channel, replies included, oldest first."""
        with self.cond:
            return self.ws.messages(channel)

    def thread(self, channel: str, ts: str) -> list[Message]:
        """A thread like conversations.replies: the parent (if any) then its replies."""
        return [m for m in self.messages(channel) if m.ts == ts or m.thread_ts == ts]

    def ephemerals(self, channel: str | None = None, user: str | None = None) -> list[Ephemeral]:
        """Ephemeral messages still shown, optionally for one channel and/or user."""
        with self.cond:
            return [e for e in self.ws.ephemerals if (channel is None or e.channel == channel) and (user is None or e.user == user)]

    @property
    def uploads(self) -> list[Upload]:
        """Files completed through files.completeUploadExternal, in order."""
        with self.cond:
            return list(self.ws.uploads)

    # -- scripting ---------------------------------------------------------------------

    def rate_limit(self, method: str, times: int = 1, retry_after: int = 1) -> None:
        """Answer the next ``times`` calls to ``method`` with HTTP 429 and ``Retry-After``."""
        with self.cond:
            self.faults.add(method, Fault(retry_after=retry_after), times)

    def fail_next(self, method: str, error: str = "channel_not_found", times: int = 1) -> None:
        """Answer the next ``times`` calls with ``{"ok": false, "error": error}`` and HTTP 200."""
        with self.cond:
            self.faults.add(method, Fault(error=error), times)

    def delay(self, method: str, seconds: float) -> None:
        """Hold every answer to ``method`` for ``seconds`` (0 turns it off)."""
        with self.cond:
            self.delays[method] = seconds

    def hold(self, method: str) -> None:
        """Keep every answer to ``method`` back until ``release(method)``: Slack hanging, with no clock involved.

        Calls are still recorded as they arrive (``status`` None while held), so a test can wait
        for one to be in flight, check what the bot did meanwhile, then let Slack answer.
        """
        with self.cond:
            self.holds.setdefault(method, threading.Event())

    def release(self, method: str) -> None:
        """Answer the held calls to ``method`` and every later one at once."""
        with self.cond:
            gate = self.holds.pop(method, None)
        if gate is not None:
            gate.set()

    def release_all(self) -> None:
        with self.cond:
            gates, self.holds = list(self.holds.values()), {}
        for gate in gates:
            gate.set()

    def enable_realistic_rate_limits(self, per_second: float = 1.0, burst: int = 3) -> None:
        """Limit chat.postMessage per channel like Slack: ``per_second`` with a burst."""
        with self.cond:
            self.buckets = ChannelBuckets(per_second, burst)

    def response_url(self, channel: str, user: str, *, message_ts: str | None = None) -> str:
        """Issue a response_url as Slack puts in a slash command or interaction payload.

        ``message_ts`` names the message the interaction came from (a channel
        message or an ephemeral), which ``replace_original`` and
        ``delete_original`` then act on; without it they act on the first
        message posted through this URL.
        """
        with self.cond:
            try:
                channel_id = self.ws.resolve_channel(channel)
            except ApiError as exc:
                raise ValueError(f"unknown channel for a response_url: {channel!r}") from exc
            token = f"{self.ws.identity.team_id}/{next(self._hook_ids)}"
            self.hooks[token] = ResponseUrl(token=token, channel=channel_id, user=user, created_at=self.clock(), target_ts=message_ts)
        return f"{self.url}{RESPONSE_PATH}{token}"

    # -- surfaces (modals and the Home tab) ------------------------------------------------

    def trigger_id(self, user: str) -> str:
        """Issue a trigger_id for an interaction by ``user``: one use, within 3 seconds (by default)."""
        with self.cond:
            return self.ws.views.issue_trigger(user)

    def view(self, view_id: str) -> View:
        """The current state of a view opened, pushed or published (``KeyError`` if unknown)."""
        with self.cond:
            return self.ws.views.snapshot(view_id)

    def views_shown(self) -> list[View]:
        """Every view as it was opened, pushed, updated or published, in order."""
        with self.cond:
            return list(self.ws.views.history)

    def open_modals(self, user: str) -> list[View]:
        """The user's open modal stack, bottom first."""
        with self.cond:
            return self.ws.views.open_stack(user)

    def home(self, user: str) -> View | None:
        """The Home tab last published for ``user``."""
        with self.cond:
            return self.ws.views.home(user)

    def close_modals(self, user: str) -> None:
        """The user closed the modal (Slack then sends ``view_closed`` if the app asked)."""
        with self.cond:
            stack = self.ws.views.open_stack(user)
            if stack:
                self.ws.views.close_stack(stack[0].id)

    def submission(self, view_id: str, user: str, values: Mapping[str, object]) -> dict[str, object]:
        """A ``view_submission`` payload as Slack would send it for ``values`` entered in a view.

        The payload is unsigned: the test encodes and signs it like any interaction.
        """
        with self.cond:
            view = self.ws.views.snapshot(view_id)
            body = view.to_slack(self.ws.identity.team_id, self.ws.identity.bot_id)
            body["state"] = submission_state(view, values)
            return {
                "type": "view_submission",
                "team": {"id": self.ws.identity.team_id, "domain": "fake"},
                "user": {"id": user, "username": self.ws.users.get(user, user), "team_id": self.ws.identity.team_id},
                "api_app_id": "A0FAKEAPP",
                "token": "legacy-verification-token",
                "trigger_id": self.ws.views.issue_trigger(user),
                "view": body,
                "response_urls": [],
                "is_enterprise_install": False,
            }

    def clear_calls(self) -> None:
        """Forget recorded calls (state such as messages is kept)."""
        with self.cond:
            self.recorded.clear()

    # -- waiting -----------------------------------------------------------------------

    def wait_for(self, predicate: Callable[[], T | None], timeout: float = 5.0, *, what: str = "") -> T:
        """Return the predicate's first truthy value, re-checking whenever a call lands.

        A predicate raising LookupError (``slack.messages("C1")[0]`` before any
        message exists) counts as "not yet". On timeout, raises AssertionError
        with the recent calls and messages so the failure explains itself.
        """
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                value = _probe(predicate)
                if value:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(self._timeout_report(what or repr(predicate), timeout))
                self.cond.wait(remaining)

    def _timeout_report(self, what: str, timeout: float) -> str:
        lines = [f"wait_for({what}) still false after {timeout}s", f"calls ({len(self.recorded)}):"]
        for call in self.recorded[-25:]:
            outcome = "in flight" if call.status is None else f"{call.status} {call.error or 'ok'}"
            lines.append(f"  {call.method} {_summary(call.params)} -> {outcome}")
        for channel, messages in self.ws.all_messages().items():
            lines.append(f"messages in {channel}:")
            lines += [f"  {m.ts} thread={m.thread_ts} {m.text[:100]!r}" for m in messages[-10:]]
        lines += [f"ephemeral to {e.user} in {e.channel}: {e.text[:100]!r}" for e in self.ws.ephemerals[-10:]]
        lines += [f"upload {u.file_id} {u.filename!r} -> {u.channels}" for u in self.ws.uploads]
        if self.faults.pending():
            lines.append(f"unused scripted faults: {self.faults.pending()}")
        lines += [f"fake server error:\n{error}" for error in self.server_errors]
        return "\n".join(lines)


def _probe(predicate: Callable[[], T | None]) -> T | None:
    try:
        return predicate()
    except LookupError:
        return None


def _summary(params: Mapping[str, object]) -> str:
    keys = ("channel", "ts", "thread_ts", "user", "usergroup", "text")
    return " ".join(f"{key}={str(params[key])[:60]!r}" for key in keys if key in params)
