"""The fake workspace: directory data plus the messages posted into it.

All mutation goes through :class:`Workspace` while the server holds the
fake's lock, so handlers stay simple single-threaded code and a test reading
snapshots never sees half an update.
"""

from __future__ import annotations

import dataclasses
import datetime
import zoneinfo
from collections.abc import Mapping, Sequence
from typing import Any

from .block_kit import check_attachments, check_text_length, parse_blocks, validate_blocks
from .records import (
    ApiError,
    Ephemeral,
    Identity,
    JsonDict,
    Message,
    PendingFile,
    Upload,
    UserGroup,
)
from .views import ViewRegistry

FIRST_TS_MICROS = 1_732_550_000_000_100
"""Where message timestamps start: "1732550000.000100", as in Slack's examples."""

TS_STEP_MICROS = 100


@dataclasses.dataclass(frozen=True)
class Content:
    """The visible part of a message, parsed and checked like Slack does."""

    text: str
    blocks: list[JsonDict] | None
    attachments: list[JsonDict] | None

    @property
    def empty(self) -> bool:
        return not self.text and not self.blocks and not self.attachments


def parse_content(params: Mapping[str, Any], *, blocks_root: str = "/blocks") -> Content:
    """Parse text/blocks/attachments and apply Slack's size and Block Kit limits."""
    text = params.get("text")
    if text is None:
        text = params.get("markdown_text")
    text = "" if text is None else str(text)
    check_text_length(text)
    blocks = parse_blocks(params.get("blocks"))
    if blocks is not None:
        validate_blocks(blocks, blocks_root)
    attachments = check_attachments(params.get("attachments"))
    return Content(text=text, blocks=blocks, attachments=attachments)


class Workspace:
    """Users, channels, groups and everything posted, keyed the way Slack keys them."""

    def __init__(
        self,
        identity: Identity,
        users: Mapping[str, str],
        channels: Mapping[str, str],
        usergroups: Mapping[str, tuple[str, Sequence[str]]],
    ) -> None:
        self.identity = identity
        self.users = dict(users)
        self.channels = dict(channels)
        self.usergroups = {
            group_id: UserGroup(id=group_id, handle=handle, users=tuple(members)) for group_id, (handle, members) in usergroups.items()
        }
        self.dm_channels = {dm_channel_id(user): user for user in self.users}
        self._messages: dict[str, list[Message]] = {}
        self.ephemerals: list[Ephemeral] = []
        self.uploads: list[Upload] = []
        self.pending_files: dict[str, PendingFile] = {}
        self.views = ViewRegistry()
        self.timezones: dict[str, str] = {}
        self.base_url = ""
        self._next_ts = FIRST_TS_MICROS
        self._next_file = 1

    # -- identifiers -----------------------------------------------------------------

    def new_ts(self) -> str:
        """A unique, strictly increasing message timestamp like ``1732550000.000100``."""
        micros = self._next_ts
        self._next_ts += TS_STEP_MICROS
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def new_file_id(self) -> str:
        """A unique file id shaped like Slack's (``F`` + 10 characters)."""
        file_id = f"F{self._next_file:010d}"
        self._next_file += 1
        return file_id

    def resolve_channel(self, raw: object) -> str:
        """Map a channel id, ``#name``/``name`` or user id (DM) to a channel id.

        chat.postMessage accepts all three forms; a user id posts to the DM
        with that user, which Slack reports back as a ``D...`` channel.
        """
        if not isinstance(raw, str) or not raw:
            raise ApiError("channel_not_found")
        if raw in self.channels or raw in self.dm_channels:
            return raw
        if raw in self.users:
            return dm_channel_id(raw)
        name = raw.removeprefix("#")
        for channel_id, channel_name in self.channels.items():
            if channel_name == name:
                return channel_id
        raise ApiError("channel_not_found")

    def channel_name(self, channel_id: str) -> str:
        return self.channels.get(channel_id) or self.dm_channels.get(channel_id, channel_id)

    # -- channel messages ------------------------------------------------------------

    def messages(self, channel: str) -> list[Message]:
        return list(self._messages.get(channel, []))

    def all_messages(self) -> dict[str, list[Message]]:
        return {channel: list(items) for channel, items in self._messages.items() if items}

    def find(self, channel: str, ts: object) -> Message | None:
        for message in self._messages.get(channel, []):
            if message.ts == ts:
                return message
        return None

    def thread_root(self, channel: str, thread_ts: object) -> str | None:
        """Normalise ``thread_ts`` to the thread's parent.

        Replying to a reply lands in the parent's thread. An unknown
        ``thread_ts`` is accepted as is: Slack answers ``ok`` and the reply is
        simply invisible in the channel, a bug the fake should let tests see
        (``thread()`` of the bogus ts) rather than hide.
        """
        if thread_ts is None or thread_ts == "":
            return None
        parent = self.find(channel, str(thread_ts))
        if parent is not None and parent.thread_ts is not None:
            return parent.thread_ts
        return str(thread_ts)

    def post(self, channel: str, content: Content, *, thread_ts: str | None, via: str) -> Message:
        message = Message(
            channel=channel,
            ts=self.new_ts(),
            text=content.text,
            blocks=content.blocks,
            attachments=content.attachments,
            thread_ts=thread_ts,
            user=self.identity.bot_user_id,
            via=via,
        )
        self._messages.setdefault(channel, []).append(message)
        return message

    def update(self, channel: str, ts: object, params: Mapping[str, Any], content: Content) -> Message:
        """Apply chat.update semantics: omitted blocks/attachments are kept, ``[]`` clears."""
        current = self.find(channel, ts)
        if current is None:
            raise ApiError("message_not_found")
        updated = dataclasses.replace(
            current,
            text=content.text if "text" in params or "markdown_text" in params else current.text,
            blocks=content.blocks if "blocks" in params else current.blocks,
            attachments=content.attachments if "attachments" in params else current.attachments,
            edited_count=current.edited_count + 1,
        )
        self._replace(channel, current, updated)
        return updated

    def delete(self, channel: str, ts: object) -> Message:
        current = self.find(channel, ts)
        if current is None:
            raise ApiError("message_not_found")
        self._messages[channel].remove(current)
        return current

    def _replace(self, channel: str, old: Message, new: Message) -> None:
        items = self._messages[channel]
        items[items.index(old)] = new

    # -- ephemerals ------------------------------------------------------------------

    def post_ephemeral(self, channel: str, user: str, content: Content, *, thread_ts: str | None, via: str) -> Ephemeral:
        ephemeral = Ephemeral(
            channel=channel,
            user=user,
            ts=self.new_ts(),
            text=content.text,
            blocks=content.blocks,
            thread_ts=thread_ts,
            via=via,
        )
        self.ephemerals.append(ephemeral)
        return ephemeral

    def replace_ephemeral(self, old: Ephemeral, content: Content | None) -> Ephemeral | None:
        """Replace (or, with ``content=None``, delete) an ephemeral in place."""
        index = self.ephemerals.index(old)
        if content is None:
            del self.ephemerals[index]
            return None
        new = dataclasses.replace(old, text=content.text, blocks=content.blocks, edited_count=old.edited_count + 1)
        self.ephemerals[index] = new
        return new

    # -- directory -------------------------------------------------------------------

    def user_object(self, user_id: str) -> JsonDict:
        """The ``users.info`` user object for a configured user."""
        name = self.users[user_id]
        real_name = name.replace(".", " ").replace("-", " ").title()
        return {
            "id": user_id,
            "team_id": self.identity.team_id,
            "name": name,
            "deleted": False,
            "real_name": real_name,
            "tz": self.timezones.get(user_id, "Etc/UTC"),
            "tz_label": self.timezones.get(user_id, "Coordinated Universal Time"),
            "tz_offset": _utc_offset_seconds(self.timezones.get(user_id, "Etc/UTC")),
            "is_bot": False,
            "is_admin": False,
            "profile": {
                "real_name": real_name,
                "display_name": name,
                "real_name_normalized": real_name,
                "display_name_normalized": name,
                "email": f"{name}@example.com",
                "team": self.identity.team_id,
            },
        }

    def channel_object(self, channel_id: str) -> JsonDict:
        """The ``conversations.info`` channel object."""
        is_im = channel_id in self.dm_channels
        body: JsonDict = {
            "id": channel_id,
            "is_channel": not is_im,
            "is_im": is_im,
            "is_private": False,
            "is_archived": False,
            "is_member": True,
        }
        if is_im:
            body["user"] = self.dm_channels[channel_id]
        else:
            body["name"] = self.channels[channel_id]
        return body


def dm_channel_id(user_id: str) -> str:
    """The DM channel the fake opens for a user: ``U0ALICE`` -> ``D0ALICE``."""
    return "D" + user_id[1:]


def _utc_offset_seconds(tz_name: str) -> int:
    """The zone's offset from UTC now, in seconds, as ``users.info`` reports ``tz_offset``."""
    offset = datetime.datetime.now(zoneinfo.ZoneInfo(tz_name)).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0
