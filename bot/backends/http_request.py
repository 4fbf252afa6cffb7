"""``http.request``: call an HTTP API (purge a CDN, kick a webhook) under the same approvals and audit as any step.

What keeps it safe: the URL must lie under a base URL the config allows (``http.allowed_urls``),
checked by ``opsbot validate`` on the template and again on the rendered URL; parameters
substituted into the URL are percent-encoded (``Action.url_args``), so they fill a path segment
and never change the host or climb out of the base; the JSON body is built from data, never by
pasting text into JSON; redirects are not followed (one could leave the allowed bases); secrets
come from files and never reach the plan, the thread, the logs or the audit log; the response
excerpt shown in the thread is redacted.

Retries use urllib3's ``Retry`` (connection errors and 429/5xx, exponential backoff, honouring
``Retry-After``): set ``retries: 0`` for an endpoint that is not safe to call twice.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.parse
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, field_validator

from bot.catalog.actions import Action, ActionArgs, Change, StepContext, StepResult
from bot.catalog.config import HttpAccess, OpsbotConfig, TargetKind
from bot.catalog.durations import Duration
from bot.catalog.runbooks import TEMPLATE_REFERENCE
from bot.errors import ActionFailed
from bot.redaction import redact

if TYPE_CHECKING:
    import urllib3

EXCERPT_CHARS = 300
RETRY_ON_STATUS = (429, 500, 502, 503, 504)
MAX_BACKOFF_SECONDS = 8.0
SHOWN_BODY_CHARS = 500


class SecretFromFile(ActionArgs):
    """A header value read from a file at run time (a mounted Secret), with an optional prefix such as ``Bearer ``."""

    from_file: str
    prefix: str = ""


class HmacSignature(ActionArgs):
    """Sign ``<timestamp>.<body>`` with HMAC-SHA256 under a key read from a file; the receiver checks both headers."""

    key_file: str
    header: str = "X-Opsbot-Signature"
    timestamp_header: str = "X-Opsbot-Timestamp"


class HttpRequestArgs(ActionArgs):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    url: str = Field(min_length=1, max_length=2_000)
    headers: dict[str, str | SecretFromFile] = Field(default_factory=dict)
    body: Any = None
    sign: HmacSignature | None = None
    expect: list[int] = Field(default_factory=lambda: [200, 201, 202, 204], min_length=1)
    retries: int = Field(default=2, ge=0, le=10)
    timeout: Duration = timedelta(seconds=10)

    @field_validator("expect")
    @classmethod
    def _status_codes(cls, value: list[int]) -> list[int]:
        for status in value:
            if not 100 <= status <= 599:
                raise ValueError(f"{status} is not an HTTP status code (100-599)")
        return value

    @field_validator("headers")
    @classmethod
    def _header_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            if not name or any(character in name for character in " \t\r\n:"):
                raise ValueError(f"{name!r} is not a valid header name")
        return value


class HttpRequest(Action[HttpRequestArgs]):
    """Send one HTTP request to an allowed API and check its status."""

    name: ClassVar[str] = "http.request"
    target_kind: ClassVar[TargetKind | None] = None
    args_model = HttpRequestArgs
    mutating: ClassVar[bool] = True
    summary: ClassVar[str] = "Call an HTTP API under an allowed base URL (JSON body, secret headers, HMAC signature, retries)."
    url_args: ClassVar[frozenset[str]] = frozenset({"url"})

    @classmethod
    def check_step(cls, args: Mapping[str, Any], config: OpsbotConfig) -> list[tuple[str, str]]:
        """``opsbot validate``: the URL template must start inside an allowed base, before any parameter."""
        url = args.get("url")
        if not isinstance(url, str):
            return []
        static = TEMPLATE_REFERENCE.split(url, maxsplit=1)[0]
        if any(_static_prefix_fits(static, base, templated=static != url) for base in config.http.allowed_urls):
            return []
        allowed = ", ".join(config.http.allowed_urls) or "none (set http.allowed_urls in the config)"
        return [("url", f"{url!r} is not under an allowed base URL; allowed: {allowed}")]

    def plan(self, ctx: StepContext, args: HttpRequestArgs) -> list[Change]:
        url = allowed_url(args.url, ctx.backends.config.http)
        changes = [Change("request", None, f"{args.method} {url}")]
        if args.body is not None:
            shown = json.dumps(redact(args.body), sort_keys=True, separators=(",", ":"))
            changes.append(Change("body", None, shown if len(shown) <= SHOWN_BODY_CHARS else shown[: SHOWN_BODY_CHARS - 1] + "…"))
        return changes

    def run(self, ctx: StepContext, args: HttpRequestArgs) -> StepResult:
        url = allowed_url(args.url, ctx.backends.config.http)
        body = json.dumps(args.body, separators=(",", ":")).encode("utf-8") if args.body is not None else b""
        headers = {"User-Agent": "opsbot", **_headers(args.headers)}
        if args.body is not None:
            headers.setdefault("Content-Type", "application/json")
        if args.sign is not None:
            headers.update(_signature(args.sign, body))
        ctx.check()
        ctx.progress(f"{args.method} {url}")
        response = _send(ctx, args, url, body, headers)
        excerpt = _excerpt(response.data)
        if response.status not in args.expect:
            expected = ", ".join(str(status) for status in args.expect)
            raise ActionFailed(f"{args.method} {url} answered HTTP {response.status} (expected {expected}): {excerpt or '(empty body)'}")
        return StepResult(
            summary=f"{args.method} {url} → HTTP {response.status}",
            details=(f"HTTP {response.status}", *(excerpt.splitlines()[:10] if excerpt else ())),
            data={"status": response.status},
        )


def allowed_url(url: str, access: HttpAccess) -> str:
    """``url`` if it lies under one of the allowed bases; else ``ActionFailed`` saying which are allowed.

    Dot segments (``..``, ``.``) are refused rather than resolved: a server may resolve them
    differently, and no legitimate runbook URL needs one.
    """
    parsed = urllib.parse.urlsplit(url)
    segments = (parsed.path or "/").split("/")
    clean = not (parsed.username or parsed.password or parsed.fragment) and not any(part in (".", "..") for part in segments)
    for base in access.allowed_urls:
        allowed = urllib.parse.urlsplit(base)
        same_origin = parsed.scheme == allowed.scheme and parsed.netloc.lower() == allowed.netloc.lower()
        if clean and same_origin and (parsed.path or "/").startswith(allowed.path):
            return url
    listed = ", ".join(access.allowed_urls) or "none (set http.allowed_urls in the config)"
    raise ActionFailed(f"{url} is not under an allowed base URL (and may not contain . or .. segments); allowed: {listed}")


def _static_prefix_fits(static: str, base: str, *, templated: bool) -> bool:
    """Whether a URL template whose text before the first parameter is ``static`` can only land under ``base``."""
    if not templated:
        return static.startswith(base) or static + "/" == base
    # With a parameter after it, the fixed part must already reach into the base's path.
    return static.startswith(base)


def _headers(declared: Mapping[str, str | SecretFromFile]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in declared.items():
        if isinstance(value, SecretFromFile):
            try:
                secret = Path(value.from_file).read_text(encoding="utf-8").strip()
            except OSError as error:
                raise ActionFailed(f"header {name}: cannot read its secret file {value.from_file} ({error.strerror})") from None
            headers[name] = value.prefix + secret
        else:
            headers[name] = value
    return headers


def _signature(sign: HmacSignature, body: bytes) -> dict[str, str]:
    try:
        key = Path(sign.key_file).read_bytes().strip()
    except OSError as error:
        raise ActionFailed(f"signature: cannot read its key file {sign.key_file} ({error.strerror})") from None
    timestamp = str(int(time.time()))
    digest = hmac.new(key, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    return {sign.timestamp_header: timestamp, sign.header: f"sha256={digest}"}


def _send(ctx: StepContext, args: HttpRequestArgs, url: str, body: bytes, headers: dict[str, str]) -> urllib3.BaseHTTPResponse:
    import urllib3  # here, not at the top: `opsbot validate` registers this action without the HTTP client (~25 ms of imports)

    retry = urllib3.Retry(
        total=args.retries, connect=args.retries, read=args.retries, status=args.retries, redirect=0,
        backoff_factor=0.5, backoff_max=MAX_BACKOFF_SECONDS, status_forcelist=RETRY_ON_STATUS, allowed_methods=None,
        respect_retry_after_header=True, raise_on_status=False, raise_on_redirect=False,
    )  # fmt: skip
    seconds = max(0.1, min(args.timeout.total_seconds(), ctx.remaining()))
    try:
        return ctx.backends.http.request(
            args.method, url, body=body or None, headers=headers, retries=retry, timeout=urllib3.Timeout(total=seconds), redirect=False
        )
    except urllib3.exceptions.HTTPError as error:
        reason = getattr(error, "reason", None) or error
        raise ActionFailed(f"{args.method} {url} failed after {args.retries + 1} attempt(s): {type(reason).__name__}: {reason}") from None


def _excerpt(data: bytes) -> str:
    text = data[: EXCERPT_CHARS * 4].decode("utf-8", errors="replace")
    text = str(redact(text))
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"


ACTIONS: list[type[Action[Any]]] = [HttpRequest]
