"""The routes under ``/api/v1``: authenticate, check and record in the HTTP worker; the work goes to a core as a job.

What is synchronous: the body's limits (413/408), credentials (401), the client's endpoints
(403), its rate (429), replays (a signed call seen before: 409; an ``Idempotency-Key`` seen
before: the first answer again), the body and the runbook's grammar (422), and the policy's yes
or no for the client (403, audited). Everything that needs a backend or Slack (lock, plan,
the approval message) happens after the ``202`` in an executor, exactly as after a Slack ack;
``GET /api/v1/requests/{id}`` shows how it went (a freeze that began in between shows there as
``denied``). Why not wait for it: the plan is a dry run against the cluster, which an HTTP
worker never talks to (docs/architecture.md, "The process model").
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bot.api import openapi
from bot.api.alerts import sort_alerts
from bot.api.credentials import Caller, ClientDirectory
from bot.api.jobs import AlertJob, ApiHandoff, ApiRequestJob
from bot.api.models import Accepted, AlertmanagerNotification, Approval, HookAnswer, OpsbotRequest, RequestStatus, RunbookRequest
from bot.api.parsing import command_of, command_text
from bot.api.problems import ApiProblem, plain, response
from bot.api.rate_limits import ClientRateLimits
from bot.audit.events import Actor, AuditEvent, EventType
from bot.audit.factories import actor_event, follow_up
from bot.catalog.config import ApiEndpoint, OpsbotConfig
from bot.errors import UsageError as OpsbotUsageError
from bot.errors import report_internal_error
from bot.logs import ThrottledWarning
from bot.requests.groups import GroupDirectory
from bot.requests.policy import Subject, evaluate
from bot.store import api_requests as api_store
from bot.store import audit as audit_store
from bot.store import replays as replay_store
from bot.store import requests as request_store
from bot.store.database import Database
from bot.store.models import ApiRequestRow, utcnow
from commands.errors import UsageError
from commands.spec import CommandSpec
from commands.vocabulary import Vocabulary

logger = logging.getLogger(__name__)

PREFIX = "/api/v1"
Handler = Callable[[Request, Caller, bytes], Awaitable[Response]]
"""A route's work once the caller is known: the request, who called, the body."""
BodyReader = Callable[[Request, int], Awaitable[bytes]]
"""Reads a body up to a byte limit within the server's deadline, or raises ``ApiProblem`` (413, 408, 400): the
server's own reader (``bot.serve.bodies``), handed in by the wiring, so the API reads bodies exactly as Slack's endpoint does."""


class InboundApi:
    """The API's routes for one serving process, over its config, its commands, the database and a handoff to the core."""

    def __init__(
        self,
        *,
        config: OpsbotConfig,
        commands: dict[str, CommandSpec],
        vocabulary: Vocabulary,
        database: Database,
        handoff: ApiHandoff,
        read_body: BodyReader,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._config = config
        self._commands = commands
        self._vocabulary = vocabulary
        self._database = database
        self._handoff = handoff
        self._read_body = read_body
        self._clock = clock
        self._clients = ClientDirectory(config.api.clients)
        self._limits = ClientRateLimits()
        self._groups = GroupDirectory(config)  # a client is in no group: allow.clients alone names it
        self._refusals = ThrottledWarning(logger)

    def app(self) -> Starlette:
        """Mounted by ``bot.serve.asgi`` under ``/api/v1``; an unknown path or method is a problem document too."""
        return Starlette(routes=self.routes(), exception_handlers={HTTPException: _http_problem})

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/requests", self._guarded("requests", self._post_request), methods=["POST"]),
            Route("/requests/{api_id}", self._guarded("requests", self._get_request), methods=["GET"]),
            Route("/hooks/alertmanager", self._guarded("alertmanager", self._alertmanager), methods=["POST"]),
            Route("/openapi.json", self._openapi, methods=["GET"]),
        ]

    # -- every call -------------------------------------------------------------------------------

    def _guarded(self, endpoint: ApiEndpoint, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """Body within its limits, then who calls, what they may call and how often; problems as problem+json."""

        async def endpoint_call(request: Request) -> Response:
            try:
                body = await self._read_body(request, self._config.api.max_body_bytes)
                caller = self._clients.authenticate(request.headers, body)
                self._check_rate(caller)
                if endpoint not in caller.client.endpoints:
                    await self._audit(self._refusal(caller, "forbidden", f"{request.method} {request.url.path}"))
                    raise ApiProblem(403, "forbidden", f"Client {caller.name!r} may not call {PREFIX}/{endpoint} (its endpoints: "
                                     f"{', '.join(caller.client.endpoints)}).")  # fmt: skip
                answer = await handler(request, caller, body)
            except ApiProblem as problem:
                if problem.status in (401, 413, 408):
                    self._refusals.warn("refused an API call to %s: %s", request.url.path, problem.detail)
                return response(problem, instance=request.url.path)
            except Exception:  # noqa: BLE001 - the database is down, a bug: an error id, never a traceback in the answer
                text = report_internal_error(logger, f"API {request.method} {request.url.path} failed")
                return response(ApiProblem(500, "internal", text), instance=request.url.path)
            logger.info("API %s %s by %s: %d", request.method, request.url.path, caller.name, answer.status_code)
            return answer

        return endpoint_call

    def _check_rate(self, caller: Caller) -> None:
        throttle = self._limits.take(caller.name, per_minute=caller.client.rate_per_minute, burst=caller.client.rate_burst)
        if throttle is None:
            return
        if throttle.audit:  # the first refusal of a minute: a flood is one audit row a minute, not one per call
            self._audit_soon(self._refusal(caller, "rate_limited", f"retry after {throttle.retry_after} s"))
        raise ApiProblem(
            429, "rate-limited",
            f"Client {caller.name!r} sent more than its rate ({caller.client.rate_per_minute:g} a minute, bursts of "
            f"{caller.client.rate_burst}); nothing was done. Try again in {throttle.retry_after} s.",
            headers={"Retry-After": str(throttle.retry_after)},
        )  # fmt: skip

    # -- POST /requests ---------------------------------------------------------------------------

    async def _post_request(self, request: Request, caller: Caller, body: bytes) -> Response:
        key = request.headers.get("idempotency-key")
        if key is None and not caller.signs:
            raise ApiProblem(400, "idempotency-key-required", "A bearer client must send an Idempotency-Key header (a new unique "
                             "value per request, the same one when retrying), so a retried call never asks twice.")  # fmt: skip
        if key is not None and not (0 < len(key) <= 255 and key.isascii() and key.isprintable()):
            raise ApiProblem(400, "idempotency-key-invalid", "The Idempotency-Key must be 1 to 255 printable ASCII characters.")
        body_sha256 = hashlib.sha256(body).hexdigest()
        if key is not None:
            earlier = await asyncio.to_thread(self._by_key, caller.name, key)
            if earlier is not None:
                return self._repeat(earlier, body_sha256)
        if caller.replay_digest is not None:
            await self._refuse_replay(caller)
        try:
            asked = RunbookRequest.model_validate_json(body)
        except ValidationError as error:
            raise ApiProblem(422, "invalid-body", _validation_text(error)) from None
        actor, text = Actor.client(caller.name), command_text(asked)
        try:
            parsed = command_of(asked, self._commands, self._vocabulary)
        except (UsageError, OpsbotUsageError) as error:
            usage = f" Usage: {error.usage}" if error.usage else ""
            await self._audit(actor_event(EventType.COMMAND_REJECTED, actor, channel=asked.channel, outcome="usage", text=text[:300]))
            raise ApiProblem(422, "usage", f"{error.user_message}{usage}") from None
        service, env = parsed.service, parsed.env
        if service is None or env is None:
            raise ApiProblem(422, "usage", f"`{parsed.command}` needs a service and an environment.")
        received = actor_event(
            EventType.COMMAND_RECEIVED, actor, channel=asked.channel, runbook=parsed.command, service=service, env=env,
            params=dict(parsed.params), outcome="received", text=text[:500], api=True,
        )  # fmt: skip
        decision = evaluate(
            self._config, self._groups, command=parsed.command, runbook=None, service=service, env=env, params=dict(parsed.params),
            subject=Subject(actor.user_id, asked.channel), now=self._clock(),
        )  # fmt: skip
        if not decision.allowed:
            await self._audit(received, follow_up(received, EventType.DENIED, "denied", reason=decision.reason, rule=decision.rule or ""))
            raise ApiProblem(403, "denied", f"Denied: {decision.reason}")
        api_id = uuid.uuid4().hex
        row = await asyncio.to_thread(self._record, api_id, caller.name, key, body_sha256)
        if row is None:  # the same key, sent twice at once: the other copy won
            assert key is not None
            earlier = await asyncio.to_thread(self._by_key, caller.name, key)
            assert earlier is not None
            return self._repeat(earlier, body_sha256)
        try:
            self._handoff.submit(ApiRequestJob(api_id=api_id, actor=actor, channel=asked.channel, text=text, parsed=parsed))
        except Exception as refused:  # noqa: BLE001 - busy or no executor: the client may retry with the same key
            logger.warning("could not hand API request %s of %s to an executor: %s", api_id, caller.name, refused)
            await asyncio.to_thread(self._forget, api_id)
            raise ApiProblem(503, "unavailable", "opsbot is busy or restarting and could not take the request; nothing was done. "
                             "Retry in a few seconds.", headers={"Retry-After": "5"}) from None  # fmt: skip
        accepted = Accepted(id=api_id, location=f"{PREFIX}/requests/{api_id}")
        return JSONResponse(accepted.model_dump(), status_code=202, headers={"Location": accepted.location})

    def _repeat(self, earlier: ApiRequestRow, body_sha256: str) -> Response:
        """An Idempotency-Key used before: the same answer for the same body, a 422 for another body."""
        if earlier.body_sha256 != body_sha256:
            raise ApiProblem(422, "idempotency-key-reused", f"That Idempotency-Key was already used for request {earlier.id} "
                             "with another body; use a new key for a new request.")  # fmt: skip
        accepted = Accepted(id=earlier.id, location=f"{PREFIX}/requests/{earlier.id}")
        return JSONResponse(accepted.model_dump(), status_code=202, headers={"Location": accepted.location, "Idempotent-Replayed": "true"})

    async def _refuse_replay(self, caller: Caller) -> None:
        assert caller.replay_digest is not None
        if not await asyncio.to_thread(self._first_time, caller, caller.replay_digest):
            raise ApiProblem(409, "replay", "This signed call was already received; nothing was done again. Sign a new call "
                             "(a new timestamp) to ask again.")  # fmt: skip

    # -- GET /requests/{id} -----------------------------------------------------------------------

    async def _get_request(self, request: Request, caller: Caller, _body: bytes) -> Response:
        api_id = str(request.path_params["api_id"])
        status = await asyncio.to_thread(self._status, caller.name, api_id)
        if status is None:
            raise ApiProblem(404, "not-found", f"Client {caller.name!r} has no request {api_id!r}.")
        return JSONResponse(status.model_dump(mode="json"))

    def _status(self, client: str, api_id: str) -> RequestStatus | None:
        with self._database.reading() as session:
            row = api_store.get(session, api_id[:36])
            if row is None or row.client != client:
                return None
            linked = request_store.get_request(session, row.request_id) if row.request_id is not None else None
            votes = request_store.votes(session, linked.id) if linked is not None else []
        request = None
        if linked is not None:
            request = OpsbotRequest(
                number=linked.id, runbook=linked.runbook, service=linked.service, env=linked.env, params=linked.params,
                state=linked.state, plan=linked.plan, policy=linked.policy_reason, approvals_required=linked.approvals_required,
                approver_groups=linked.approver_groups, expires_at=linked.expires_at, started_at=linked.started_at,
                finished_at=linked.finished_at, result=linked.result,
                approvals=[Approval(user=vote.user_id, decision=vote.decision, at=vote.created_at) for vote in votes],
            )  # fmt: skip
        state, detail = (linked.state, row.detail) if linked is not None else (api_store.shown_state(row, self._clock()), row.detail)
        if state == api_store.LOST:
            detail = LOST_DETAIL
        return RequestStatus(id=row.id, client=row.client, state=state, detail=plain(detail), created_at=row.created_at, request=request)

    # -- POST /hooks/alertmanager -----------------------------------------------------------------

    async def _alertmanager(self, _request: Request, caller: Caller, body: bytes) -> Response:
        if caller.replay_digest is not None:
            await self._refuse_replay(caller)
        try:
            notification = AlertmanagerNotification.model_validate_json(body)
        except ValidationError as error:
            raise ApiProblem(422, "invalid-body", f"Not an Alertmanager webhook (version 4) body: {_validation_text(error)}") from None
        notices, ignored = sort_alerts(notification, self._config)
        if notices or ignored:
            try:
                self._handoff.submit(AlertJob(actor=Actor.client(caller.name), alerts=tuple(notices), ignored=len(ignored)))
            except Exception:  # noqa: BLE001 - Alertmanager retries a non-2xx: that is the retry we want
                raise ApiProblem(503, "unavailable", "opsbot could not take the alerts now; Alertmanager will retry.",
                                 headers={"Retry-After": "5"}) from None  # fmt: skip
        answer = HookAnswer(accepted=[notice.fingerprint for notice in notices], ignored=ignored)
        return JSONResponse(answer.model_dump())

    # -- GET /openapi.json ------------------------------------------------------------------------

    async def _openapi(self, _request: Request) -> Response:
        return JSONResponse(openapi.document())

    # -- the store ----------------------------------------------------------------------------------

    def _by_key(self, client: str, key: str) -> ApiRequestRow | None:
        with self._database.reading() as session:
            return api_store.by_key(session, client, key)

    def _record(self, api_id: str, client: str, key: str | None, body_sha256: str) -> ApiRequestRow | None:
        with self._database.transaction() as session:
            return api_store.insert(
                session, api_id=api_id, client=client, idempotency_key=key, body_sha256=body_sha256, state=api_store.ACCEPTED,
                detail="", now=self._clock(),
            )  # fmt: skip

    def _forget(self, api_id: str) -> None:
        with self._database.transaction() as session:
            api_store.forget(session, api_id)

    def _first_time(self, caller: Caller, digest: str) -> bool:
        now = self._clock()
        with self._database.transaction() as session:
            if replay_store.first_time_seen(session, digest, now):
                return True
            event = actor_event(EventType.REPLAY_REJECTED, Actor.client(caller.name), outcome="replay", delivery=digest)
            audit_store.append_events(session, [event], now)
        return False

    async def _audit(self, *events: AuditEvent) -> None:
        await asyncio.to_thread(self._append, list(events))

    def _audit_soon(self, event: AuditEvent) -> None:
        """From synchronous code on the loop: the write runs in a thread, the answer does not wait for it."""
        task = asyncio.get_running_loop().create_task(self._audit(event))
        task.add_done_callback(_log_failure)

    def _append(self, events: list[AuditEvent]) -> None:
        now = self._clock()
        with self._database.transaction() as session:
            audit_store.append_events(session, events, now)

    @staticmethod
    def _refusal(caller: Caller, outcome: str, reason: str) -> AuditEvent:
        return actor_event(EventType.COMMAND_REJECTED, Actor.client(caller.name), outcome=outcome, reason=reason[:300])


LOST_DETAIL = (
    "opsbot stopped before it finished taking this request (a restart or a crash after the 202). "
    "It may or may not have become a request: look in the channel it names (`/ops history` or `/ops approvals` there) "
    "before asking again, with a new Idempotency-Key."
)


async def _http_problem(request: Request, error: Exception) -> Response:
    """Starlette's own 404 and 405 (no such path, a method the path does not take), as problem+json."""
    assert isinstance(error, HTTPException)
    kind = {404: "not-found", 405: "method-not-allowed"}.get(error.status_code, "http")
    detail = f"{request.method} {request.url.path} is not part of opsbot's API (see {PREFIX}/openapi.json)."
    return response(ApiProblem(error.status_code, kind, detail, headers=dict(error.headers or {})), instance=request.url.path)


def _validation_text(error: ValidationError) -> str:
    """pydantic's errors as one sentence: ``channel: String should match pattern …; args: …``."""
    parts: list[str] = []
    for item in error.errors()[:5]:
        where = ".".join(str(part) for part in item["loc"]) or "body"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts) + "."


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("could not audit an API refusal", exc_info=task.exception())
