"""Value types shared by the fake Slack Web API modules.

Everything a test reads back from the fake (calls, messages, ephemerals,
uploads) is an immutable snapshot, so a test can hold on to one while the
server keeps mutating its own state on other threads.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

JsonDict = dict[str, Any]
"""A decoded JSON object, as Slack sends and receives them."""


class ApiError(Exception):
    """A Slack-style failure: ``{"ok": false, "error": code, ...}``.

    Handlers raise it instead of building error bodies by hand so every
    error has the same envelope, and so the HTTP status (200 for the Web
    API, 4xx for response_url and upload URLs) is decided in one place.
    """

    def __init__(self, code: str, *, status: int = 200, extra: JsonDict | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.status = status
        self.extra: JsonDict = dict(extra or {})

    def body(self) -> JsonDict:
        """The JSON body Slack would answer with."""
        return {"ok": False, "error": self.code, **self.extra}


@dataclass
class RecordedCall:
    """One request the fake received, in arrival order.

    ``status`` and ``response`` are filled in once the answer is sent; they
    stay ``None`` while the call is still being served (e.g. under
    ``delay()``), which lets a test observe in-flight calls.
    """

    method: str
    params: JsonDict
    headers: dict[str, str]
    at: float
    path: str = ""
    status: int | None = None
    response: JsonDict | None = None
    received_at: float = field(default_factory=time.time)
    """Wall-clock arrival (``at`` follows the fake's own clock, which tests may move): benchmarks time across processes with it."""

    @property
    def ok(self) -> bool:
        """Whether the fake answered ``ok: true`` (False while in flight)."""
        return bool(self.response and self.response.get("ok"))

    @property
    def error(self) -> str | None:
        """The Slack error code of the answer, if it was a failure."""
        if self.response is None:
            return None
        error = self.response.get("error")
        return str(error) if error is not None else None


@dataclass(frozen=True)
class Message:
    """A message as it currently stands in a channel (after any updates)."""

    channel: str
    ts: str
    text: str
    blocks: list[JsonDict] | None = None
    thread_ts: str | None = None
    user: str = ""
    edited_count: int = 0
    attachments: list[JsonDict] | None = None
    via: str = "chat.postMessage"

    def to_slack(self, bot_id: str) -> JsonDict:
        """The message object Slack returns in ``chat.*`` answers."""
        body: JsonDict = {
            "type": "message",
            "user": self.user,
            "bot_id": bot_id,
            "text": self.text,
            "ts": self.ts,
        }
        if self.blocks is not None:
            body["blocks"] = self.blocks
        if self.attachments is not None:
            body["attachments"] = self.attachments
        if self.thread_ts is not None:
            body["thread_ts"] = self.thread_ts
        if self.edited_count:
            body["edited"] = {"user": self.user, "ts": self.ts}
        return body


@dataclass(frozen=True)
class Ephemeral:
    """A message only ``user`` can see (chat.postEphemeral or response_url)."""

    channel: str
    user: str
    ts: str
    text: str
    blocks: list[JsonDict] | None = None
    thread_ts: str | None = None
    edited_count: int = 0
    via: str = "chat.postEphemeral"


@dataclass(frozen=True)
class Upload:
    """A file completed through the files_upload_v2 flow."""

    file_id: str
    filename: str
    title: str
    content: bytes
    channel: str | None
    channels: tuple[str, ...] = ()
    thread_ts: str | None = None
    initial_comment: str | None = None
    alt_txt: str | None = None
    snippet_type: str | None = None

    @property
    def text(self) -> str:
        """The content decoded as UTF-8, for snippet-style assertions."""
        return self.content.decode("utf-8", errors="replace")


@dataclass
class PendingFile:
    """A file id handed out by files.getUploadURLExternal, not yet completed."""

    file_id: str
    filename: str
    length: int
    alt_txt: str | None = None
    snippet_type: str | None = None
    content: bytes | None = None


@dataclass(frozen=True)
class UserGroup:
    """A Slack user group (``S...`` id) with its @handle and members."""

    id: str
    handle: str
    users: tuple[str, ...]
    name: str = ""

    def to_slack(self, team_id: str, *, include_users: bool) -> JsonDict:
        """The usergroup object ``usergroups.list`` returns."""
        body: JsonDict = {
            "id": self.id,
            "team_id": team_id,
            "is_usergroup": True,
            "name": self.name or self.handle,
            "description": "",
            "handle": self.handle,
            "is_external": False,
            "date_delete": 0,
            "auto_type": None,
            "user_count": len(self.users),
            "prefs": {"channels": [], "groups": []},
        }
        if include_users:
            body["users"] = list(self.users)
        return body


@dataclass(frozen=True)
class Identity:
    """Who the fake says the token belongs to (what auth.test returns)."""

    token: str
    team_id: str = "T0FAKE"
    team: str = "Fake Workspace"
    bot_user_id: str = "U0BOT"
    bot_name: str = "opsbot"
    bot_id: str = "B0BOT"
    app_id: str = "A0FAKE"
    scopes: tuple[str, ...] = field(
        default=(
            "chat:write",
            "commands",
            "files:write",
            "usergroups:read",
            "users:read",
            "channels:read",
        )
    )

    @property
    def workspace_url(self) -> str:
        """The workspace URL Slack reports (never dialled by anyone)."""
        return "https://fake-workspace.slack.com/"
