"""The external upload flow that ``WebClient.files_upload_v2`` drives.

slack_sdk 3.48 uploads in three steps: ``files.getUploadURLExternal`` per
file, a raw POST of the bytes to the returned upload URL, then one
``files.completeUploadExternal`` that shares them (no ``files.info`` call).
The fake hands out upload URLs on itself so the middle step is real HTTP
too; a file is only recorded in ``uploads`` once it is completed, as in
Slack, where an uploaded-but-not-completed file is never shared.
"""

from __future__ import annotations

import mimetypes

from .arguments import optional_str, positive_int, required_str
from .block_kit import parse_json_field
from .records import ApiError, JsonDict, PendingFile, Upload
from .workspace import Workspace

UPLOAD_PATH = "/upload/v1/"


def files_get_upload_url_external(ws: Workspace, params: JsonDict) -> JsonDict:
    pending = PendingFile(
        file_id=ws.new_file_id(),
        filename=required_str(params, "filename"),
        length=positive_int(params, "length"),
        alt_txt=optional_str(params, "alt_txt"),
        snippet_type=optional_str(params, "snippet_type"),
    )
    ws.pending_files[pending.file_id] = pending
    return {"upload_url": f"{ws.base_url}{UPLOAD_PATH}{pending.file_id}", "file_id": pending.file_id}


def store_upload(ws: Workspace, file_id: str, data: bytes) -> str:
    """Keep the bytes POSTed to an upload URL; answers Slack's ``OK - <size>`` text."""
    pending = ws.pending_files.get(file_id)
    if pending is None:
        raise ApiError("file_not_found", status=404)
    pending.content = data
    return f"OK - {len(data)}"


def files_complete_upload_external(ws: Workspace, params: JsonDict) -> JsonDict:
    """Share uploaded files; nothing is recorded unless every file is valid."""
    items = _requested_files(params)
    channel = ws.resolve_channel(params["channel_id"]) if params.get("channel_id") else None
    channels = _shared_channels(ws, channel, params.get("channels"))
    thread_ts = optional_str(params, "thread_ts")
    pending = [_uploaded(ws, str(item.get("id"))) for item in items]
    uploads = []
    for item, file in zip(items, pending, strict=True):
        upload = Upload(
            file_id=file.file_id,
            filename=file.filename,
            title=str(item.get("title") or file.filename),
            content=file.content or b"",
            channel=channels[0] if channels else None,
            channels=tuple(channels),
            thread_ts=ws.thread_root(channels[0], thread_ts) if channels and thread_ts else None,
            initial_comment=optional_str(params, "initial_comment"),
            alt_txt=file.alt_txt,
            snippet_type=file.snippet_type,
        )
        del ws.pending_files[file.file_id]
        ws.uploads.append(upload)
        uploads.append(upload)
    return {"files": [_file_object(ws, upload) for upload in uploads]}


def files_upload_v1(ws: Workspace, params: JsonDict) -> JsonDict:
    """The retired ``files.upload``: Slack turned it off in favour of the v2 flow."""
    raise ApiError("method_deprecated")


def _requested_files(params: JsonDict) -> list[JsonDict]:
    items = parse_json_field(params.get("files"), error="invalid_arguments")
    if not isinstance(items, list) or not items or not all(isinstance(i, dict) and i.get("id") for i in items):
        raise ApiError("invalid_arguments")
    return items


def _shared_channels(ws: Workspace, channel: str | None, raw: object) -> list[str]:
    channels = [channel] if channel else []
    if isinstance(raw, str) and raw:
        channels += [ws.resolve_channel(part.strip()) for part in raw.split(",") if part.strip()]
    return channels


def _uploaded(ws: Workspace, file_id: str) -> PendingFile:
    pending = ws.pending_files.get(file_id)
    if pending is None or pending.content is None:
        raise ApiError("file_not_found")
    return pending


def _file_object(ws: Workspace, upload: Upload) -> JsonDict:
    mimetype = mimetypes.guess_type(upload.filename)[0] or "text/plain"
    body: JsonDict = {
        "id": upload.file_id,
        "name": upload.filename,
        "title": upload.title,
        "mimetype": mimetype,
        "filetype": upload.filename.rsplit(".", 1)[-1] if "." in upload.filename else "text",
        "user": ws.identity.bot_user_id,
        "size": len(upload.content),
        "is_external": False,
        "url_private": f"{ws.base_url}/files/{upload.file_id}/{upload.filename}",
        "permalink": f"{ws.identity.workspace_url}files/{ws.identity.bot_user_id}/{upload.file_id}",
        "channels": list(upload.channels),
    }
    if upload.alt_txt:
        body["alt_txt"] = upload.alt_txt
    return body
