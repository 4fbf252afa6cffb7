"""Request serving for the fake Slack server: routing, recording, faults.

Every request is recorded on arrival (so in-flight calls are visible), may
be held by a scripted delay or hold outside the lock, and is then answered under
the lock, which also wakes anyone in ``wait_for``. A bug in the fake itself
answers HTTP 500 and is kept in ``server_errors`` rather than being lost in
a handler thread.
"""

from __future__ import annotations

import json
import threading
import traceback
from collections.abc import Callable

from .faults import ChannelBuckets, FaultScript, RateLimited
from .methods import METHODS, NO_AUTH_METHODS
from .records import ApiError, JsonDict, RecordedCall
from .response_urls import RESPONSE_PATH, ResponseUrl, respond
from .uploads import UPLOAD_PATH, store_upload
from .wire import HttpReply, HttpRequest, decode_params
from .workspace import Workspace

API_PATH = "/api/"
UPLOAD_CALL = "file_upload"
"""``RecordedCall.method`` of a POST of file bytes to an upload URL."""
RESPONSE_URL_CALL = "response_url"
"""``RecordedCall.method`` of a POST to a response_url."""


class SlackCore:
    """State and request handling behind :class:`FakeSlackApi`."""

    def __init__(self, ws: Workspace, clock: Callable[[], float]) -> None:
        self.ws = ws
        self.clock = clock
        self.cond = threading.Condition(threading.RLock())
        self.recorded: list[RecordedCall] = []
        self.faults = FaultScript()
        self.delays: dict[str, float] = {}
        self.holds: dict[str, threading.Event] = {}
        self.buckets: ChannelBuckets | None = None
        self.hooks: dict[str, ResponseUrl] = {}
        self.server_errors: list[str] = []
        self.stopping = threading.Event()

    def handle(self, request: HttpRequest) -> HttpReply:
        """Route one HTTP request (called on the server's handler threads)."""
        if request.path.startswith(API_PATH):
            return self._web_api(request)
        if request.path.startswith(UPLOAD_PATH) and request.method == "POST":
            return self._upload(request)
        if request.path.startswith(RESPONSE_PATH) and request.method == "POST":
            return self._response_url(request)
        return self._serve("unknown_path", {"path": request.path}, request, lambda: HttpReply.text(404, "not found"))

    # -- the three kinds of endpoint ---------------------------------------------------

    def _web_api(self, request: HttpRequest) -> HttpReply:
        method = request.path[len(API_PATH) :]
        try:
            params = decode_params(request)
        except ApiError as exc:
            bad_body = exc
            return self._serve(method, {}, request, lambda: HttpReply.json(200, bad_body.body()))
        return self._serve(method, params, request, lambda: self._call(method, params, request))

    def _upload(self, request: HttpRequest) -> HttpReply:
        file_id = request.path[len(UPLOAD_PATH) :]
        data = _uploaded_bytes(request)

        def answer() -> HttpReply:
            try:
                return HttpReply.text(200, store_upload(self.ws, file_id, data))
            except ApiError as exc:
                return HttpReply.json(exc.status, exc.body())

        return self._serve(UPLOAD_CALL, {"file_id": file_id, "size": len(data)}, request, answer)

    def _response_url(self, request: HttpRequest) -> HttpReply:
        token = request.path[len(RESPONSE_PATH) :]
        body = _json_or_none(request.body)
        params = body if isinstance(body, dict) else {"raw": request.body.decode("utf-8", errors="replace")}

        def answer() -> HttpReply:
            hook = self.hooks.get(token)
            try:
                if hook is None:
                    raise ApiError("no_service", status=404)
                return HttpReply.json(200, {"ok": True, **respond(self.ws, hook, body, self.clock())})
            except ApiError as exc:
                return HttpReply.json(exc.status, exc.body())

        return self._serve(RESPONSE_URL_CALL, params, request, answer)

    # -- Web API semantics -------------------------------------------------------------

    def _call(self, method: str, params: JsonDict, request: HttpRequest) -> HttpReply:
        """Answer a Web API call in Slack's order: method, auth, limits, then the work."""
        try:
            handler = METHODS.get(method)
            if handler is None:
                raise ApiError("unknown_method")
            if method not in NO_AUTH_METHODS:
                self._authenticate(params, request)
            fault = self.faults.pop(method)
            if fault is not None:
                fault.trigger()
            self._throttle(method, params)
            return HttpReply.json(200, {"ok": True, **handler(self.ws, params)}, self._scope_header())
        except RateLimited as exc:
            body = {"ok": False, "error": "ratelimited"}
            return HttpReply.json(429, body, {"Retry-After": str(exc.retry_after)})
        except ApiError as exc:
            return HttpReply.json(exc.status, exc.body(), self._scope_header())

    def _authenticate(self, params: JsonDict, request: HttpRequest) -> None:
        """Bearer header, or a ``token`` argument in non-JSON bodies (Slack ignores it in JSON)."""
        token = request.bearer_token()
        if token is None and not request.is_json:
            token = params.get("token") or None
        if token is None:
            raise ApiError("not_authed")
        if token != self.ws.identity.token:
            raise ApiError("invalid_auth")

    def _throttle(self, method: str, params: JsonDict) -> None:
        """Slack's special chat.postMessage limit: about one per second per channel."""
        if self.buckets is None or method != "chat.postMessage":
            return
        try:
            channel = self.ws.resolve_channel(params.get("channel"))
        except ApiError:
            return  # the handler answers channel_not_found
        self.buckets.take(channel, self.clock())

    def _scope_header(self) -> dict[str, str]:
        """Slack reports the token's scopes on every answer; Bolt reads them from auth.test."""
        return {"x-oauth-scopes": ",".join(self.ws.identity.scopes)}

    # -- recording -------------------------------------------------------------------

    def _serve(self, method: str, params: JsonDict, request: HttpRequest, answer: Callable[[], HttpReply]) -> HttpReply:
        call = self._record(method, params, request)
        self._pause(method)
        with self.cond:
            try:
                reply = answer()
            except Exception:  # a bug in the fake, not a Slack answer
                self.server_errors.append(traceback.format_exc())
                reply = HttpReply.json(500, {"ok": False, "error": "fake_server_error"})
            call.status = reply.status
            call.response = reply.payload()
            self.cond.notify_all()
        return reply

    def _record(self, method: str, params: JsonDict, request: HttpRequest) -> RecordedCall:
        with self.cond:
            call = RecordedCall(method=method, params=params, headers=dict(request.headers), at=self.clock(), path=request.path)
            self.recorded.append(call)
            self.cond.notify_all()
            return call

    def _pause(self, method: str) -> None:
        """Hold the answer for a scripted delay, or until a hold is released, without the lock; stop() cuts both short."""
        with self.cond:
            seconds = self.delays.get(method, 0.0)
            gate = self.holds.get(method)
        if seconds > 0:
            self.stopping.wait(seconds)
        if gate is not None:
            gate.wait()


def _json_or_none(body: bytes) -> object:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _uploaded_bytes(request: HttpRequest) -> bytes:
    """Upload URLs take the raw bytes, or a multipart form with a file part."""
    if request.content_type != "multipart/form-data":
        return request.body
    for value in decode_params(request).values():
        if isinstance(value, bytes):
            return value
    return b""
