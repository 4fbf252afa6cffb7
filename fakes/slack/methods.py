"""Web API method handlers of the fake Slack server.

Each handler takes the workspace and the decoded arguments and returns the
success body (without ``ok``), or raises :class:`ApiError` with the error
code Slack documents for that method. Handlers run under the fake's lock.
"""

from __future__ import annotations

from collections.abc import Callable

from .arguments import flag, optional_str, required_str
from .records import ApiError, JsonDict
from .uploads import (
    files_complete_upload_external,
    files_get_upload_url_external,
    files_upload_v1,
)
from .views import views_open, views_publish, views_push, views_update
from .workspace import Workspace, dm_channel_id, parse_content

Handler = Callable[[Workspace, JsonDict], JsonDict]

CONTENT_FIELDS = ("text", "markdown_text", "blocks", "attachments")


def auth_test(ws: Workspace, params: JsonDict) -> JsonDict:
    me = ws.identity
    return {
        "url": me.workspace_url,
        "team": me.team,
        "user": me.bot_name,
        "team_id": me.team_id,
        "user_id": me.bot_user_id,
        "bot_id": me.bot_id,
        "is_enterprise_install": False,
    }


def chat_post_message(ws: Workspace, params: JsonDict) -> JsonDict:
    channel = ws.resolve_channel(params.get("channel"))
    content = parse_content(params)
    if content.empty:
        raise ApiError("no_text")
    thread_ts = ws.thread_root(channel, params.get("thread_ts"))
    message = ws.post(channel, content, thread_ts=thread_ts, via="chat.postMessage")
    return {"channel": channel, "ts": message.ts, "message": message.to_slack(ws.identity.bot_id)}


def chat_update(ws: Workspace, params: JsonDict) -> JsonDict:
    channel = ws.resolve_channel(params.get("channel"))
    ts = required_str(params, "ts", error="message_not_found")
    if not any(key in params for key in CONTENT_FIELDS):
        raise ApiError("no_text")
    content = parse_content(params)
    message = ws.update(channel, ts, params, content)
    return {
        "channel": channel,
        "ts": message.ts,
        "text": message.text,
        "message": message.to_slack(ws.identity.bot_id),
    }


def chat_delete(ws: Workspace, params: JsonDict) -> JsonDict:
    channel = ws.resolve_channel(params.get("channel"))
    message = ws.delete(channel, required_str(params, "ts", error="message_not_found"))
    return {"channel": channel, "ts": message.ts}


def chat_post_ephemeral(ws: Workspace, params: JsonDict) -> JsonDict:
    """Slack refuses ephemerals to users it cannot find in the channel."""
    channel = ws.resolve_channel(params.get("channel"))
    user = required_str(params, "user", error="user_not_in_channel")
    if user not in ws.users:
        raise ApiError("user_not_in_channel")
    content = parse_content(params)
    if content.empty:
        raise ApiError("no_text")
    thread_ts = ws.thread_root(channel, params.get("thread_ts"))
    ephemeral = ws.post_ephemeral(channel, user, content, thread_ts=thread_ts, via="chat.postEphemeral")
    return {"message_ts": ephemeral.ts}


def chat_get_permalink(ws: Workspace, params: JsonDict) -> JsonDict:
    channel = ws.resolve_channel(params.get("channel"))
    message = ws.find(channel, required_str(params, "message_ts", error="message_not_found"))
    if message is None:
        raise ApiError("message_not_found")
    link = f"{ws.identity.workspace_url}archives/{channel}/p{message.ts.replace('.', '')}"
    if message.thread_ts is not None:
        link += f"?thread_ts={message.thread_ts}&cid={channel}"
    return {"channel": channel, "permalink": link}


def conversations_info(ws: Workspace, params: JsonDict) -> JsonDict:
    channel = ws.resolve_channel(params.get("channel"))
    return {"channel": ws.channel_object(channel)}


def conversations_open(ws: Workspace, params: JsonDict) -> JsonDict:
    """Open (or find) the DM with one user; multi-person DMs are not modelled."""
    users = [u.strip() for u in required_str(params, "users", error="users_list_not_supplied").split(",") if u.strip()]
    if len(users) != 1 or users[0] not in ws.users:
        raise ApiError("user_not_found")
    return {"channel": ws.channel_object(dm_channel_id(users[0]))}


def users_info(ws: Workspace, params: JsonDict) -> JsonDict:
    user = required_str(params, "user", error="user_not_found")
    if user not in ws.users:
        raise ApiError("user_not_found")
    return {"user": ws.user_object(user)}


def usergroups_list(ws: Workspace, params: JsonDict) -> JsonDict:
    include_users = flag(params, "include_users")
    groups = [g.to_slack(ws.identity.team_id, include_users=include_users) for g in ws.usergroups.values()]
    return {"usergroups": groups}


def usergroups_users_list(ws: Workspace, params: JsonDict) -> JsonDict:
    group_id = required_str(params, "usergroup")
    group = ws.usergroups.get(group_id)
    if group is None:
        raise ApiError("no_such_subteam")
    return {"users": list(group.users)}


def api_test(ws: Workspace, params: JsonDict) -> JsonDict:
    """api.test echoes its arguments and can be asked to fail with ``error``."""
    error = optional_str(params, "error")
    if error:
        raise ApiError(error, extra={"args": params})
    return {"args": params}


METHODS: dict[str, Handler] = {
    "api.test": api_test,
    "auth.test": auth_test,
    "chat.delete": chat_delete,
    "chat.getPermalink": chat_get_permalink,
    "chat.postEphemeral": chat_post_ephemeral,
    "chat.postMessage": chat_post_message,
    "chat.update": chat_update,
    "conversations.info": conversations_info,
    "conversations.open": conversations_open,
    "files.completeUploadExternal": files_complete_upload_external,
    "files.getUploadURLExternal": files_get_upload_url_external,
    "files.upload": files_upload_v1,
    "usergroups.list": usergroups_list,
    "usergroups.users.list": usergroups_users_list,
    "users.info": users_info,
    "views.open": views_open,
    "views.publish": views_publish,
    "views.push": views_push,
    "views.update": views_update,
}
"""Every method the fake implements; anything else answers ``unknown_method``."""

NO_AUTH_METHODS = frozenset({"api.test"})
"""Methods Slack serves without a token."""
