"""Errors as RFC 9457 problem details (``application/problem+json``), carrying opsbot's own sentences.

opsbot's messages are written for Slack (mrkdwn, ``&lt;`` escapes); ``plain`` turns them back
into text for a JSON reader. A 401 names the schemes in ``WWW-Authenticate``; a 429 says when to
come back in ``Retry-After``.
"""

from __future__ import annotations

from starlette.responses import JSONResponse

from bot.api.models import Problem

PROBLEM_TYPE = "urn:opsbot:problem:"
CHALLENGE = 'Bearer realm="opsbot", OpsbotHMAC realm="opsbot"'
TITLES = {
    400: "Bad request",
    401: "Unauthenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    408: "Request body too slow",
    409: "Conflict",
    413: "Payload too large",
    422: "Unprocessable request",
    429: "Too many requests",
    500: "Internal error",
    503: "Unavailable",
}


class ApiProblem(Exception):
    """Raised anywhere in a handler; the app answers it as a problem document."""

    def __init__(self, status: int, kind: str, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.detail = plain(detail)
        self.headers = headers or {}


def unauthenticated(detail: str, *, invalid_token: bool = False) -> ApiProblem:
    """401 naming both schemes; a bearer token that was sent but is wrong adds RFC 6750's ``error="invalid_token"``."""
    challenge = CHALLENGE.replace('realm="opsbot",', 'realm="opsbot", error="invalid_token",', 1) if invalid_token else CHALLENGE
    return ApiProblem(401, "unauthenticated", detail, headers={"WWW-Authenticate": challenge})


def response(problem: ApiProblem, instance: str | None = None) -> JSONResponse:
    body = Problem(
        type=f"{PROBLEM_TYPE}{problem.kind}", title=TITLES.get(problem.status, "Error"), status=problem.status,
        detail=problem.detail, instance=instance,
    )  # fmt: skip
    return JSONResponse(
        body.model_dump(exclude_none=True), status_code=problem.status, headers=problem.headers, media_type="application/problem+json"
    )


def plain(text: str) -> str:
    """mrkdwn entities back to characters (``&lt;`` → ``<``); ``&amp;`` last, so ``&amp;lt;`` stays ``&lt;``."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
