"""``http.request`` against a real local HTTP server (pytest-httpserver): templating, signing, retries, the allow-list.

Each test runs the step the way a runbook does: parameters rendered by the run engine's
``render_args`` (percent-encoding in the URL), arguments validated by the action's model, the
request sent over real HTTP with urllib3.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from bot.backends import Backends
from bot.backends.http_request import HttpRequest, HttpRequestArgs
from bot.catalog.actions import StepContext
from bot.catalog.config import Environment, HttpAccess, KubernetesTarget, OpsbotConfig, Service
from bot.errors import ActionFailed
from bot.runs.steps import render_args

TARGET = KubernetesTarget(namespace="shop", deployment="checkout")


def config_for(*bases: str) -> OpsbotConfig:
    return OpsbotConfig(
        services={"checkout": Service(environments={"production": Environment(kubernetes=TARGET)})},
        http=HttpAccess(allowed_urls=list(bases)),
    )


def context(config: OpsbotConfig, lines: list[str] | None = None) -> StepContext:
    return StepContext(
        request_id=7, service="checkout", env="production", target=TARGET, actor_id="U0ALICE", actor_name="alice",
        backends=Backends(config), progress=(lines if lines is not None else []).append, cancel_event=threading.Event(),
        deadline=time.monotonic() + 30,
    )  # fmt: skip


def step_args(raw: dict[str, Any], params: dict[str, Any]) -> HttpRequestArgs:
    return HttpRequestArgs.model_validate(render_args(raw, params, url_args=HttpRequest.url_args))


def test_the_body_is_built_from_parameters_as_json_and_signed(httpserver: HTTPServer, tmp_path: Path) -> None:
    key = tmp_path / "hook-key"
    key.write_text("s3cret-key\n")
    token = tmp_path / "token"
    token.write_text("t0ken\n")
    httpserver.expect_oneshot_request("/hooks/purge/checkout", method="POST").respond_with_json({"purged": 3}, status=202)
    raw = {
        "url": httpserver.url_for("/hooks/purge/{service}"),
        "headers": {"Authorization": {"from_file": str(token), "prefix": "Bearer "}},
        "body": {"service": "{service}", "paths": ["/{service}/*"], "replicas": "{replicas}", "note": "{note}"},
        "sign": {"key_file": str(key)},
    }
    params = {"service": "checkout", "replicas": 4, "note": 'he said "hi", }{'}
    config = config_for(httpserver.url_for("/hooks/"))

    result = HttpRequest().run(context(config), step_args(raw, params))

    [(request, _)] = httpserver.log
    assert json.loads(request.get_data()) == {"service": "checkout", "paths": ["/checkout/*"], "replicas": 4, "note": 'he said "hi", }{'}
    assert request.headers["Authorization"] == "Bearer t0ken"
    stamp = request.headers["X-Opsbot-Timestamp"]
    expected = hmac.new(b"s3cret-key", stamp.encode() + b"." + request.get_data(), hashlib.sha256).hexdigest()
    assert request.headers["X-Opsbot-Signature"] == f"sha256={expected}"
    assert result.summary == f"POST {httpserver.url_for('/hooks/purge/checkout')} → HTTP 202"
    assert '"purged": 3' in "\n".join(result.details), "the response excerpt goes to the thread"


def test_the_plan_shows_method_url_and_body_but_never_a_secret_header(httpserver: HTTPServer, tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t0ken")
    raw = {
        "url": httpserver.url_for("/hooks/purge"),
        "headers": {"Authorization": {"from_file": str(tmp_path / "token")}},
        "body": {"a": 1},
    }

    changes = HttpRequest().plan(context(config_for(httpserver.url_for("/hooks/"))), step_args(raw, {}))

    assert [change.render() for change in changes] == [
        f"request (none) → POST {httpserver.url_for('/hooks/purge')}",
        'body (none) → {"a":1}',
    ]
    assert httpserver.log == [], "planning sends nothing"


def test_temporary_failures_are_retried_with_backoff(httpserver: HTTPServer) -> None:
    answers = iter([Response("busy", status=503), Response("busy", status=503), Response("ok", status=200)])
    httpserver.expect_request("/hooks/kick").respond_with_handler(lambda _request: next(answers))

    result = HttpRequest().run(
        context(config_for(httpserver.url_for("/hooks/"))), step_args({"url": httpserver.url_for("/hooks/kick")}, {})
    )

    assert len(httpserver.log) == 3
    assert result.summary.endswith("HTTP 200")


def test_an_unexpected_status_fails_the_step_with_a_redacted_excerpt(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hooks/kick").respond_with_data("denied for xoxb-123456-abcdef and password=hunter2", status=403)

    with pytest.raises(ActionFailed) as failed:
        HttpRequest().run(context(config_for(httpserver.url_for("/hooks/"))), step_args({"url": httpserver.url_for("/hooks/kick")}, {}))

    assert "answered HTTP 403 (expected 200, 201, 202, 204)" in failed.value.user_message
    assert "xoxb-123456" not in failed.value.user_message
    assert len(httpserver.log) == 1, "a 403 is not retried"


def test_a_parameter_cannot_point_the_request_outside_the_allowed_base(httpserver: HTTPServer) -> None:
    httpserver.expect_request(re.compile("/hooks/.*")).respond_with_data("ok")
    config = config_for(httpserver.url_for("/hooks/"))
    raw = {"url": httpserver.url_for("/hooks/{target}")}

    for hostile in ("../admin", "x/../../admin", "..", "a?b=c#frag", "@evil.example.com", "%2e%2e/admin"):
        before = len(httpserver.log)
        try:
            HttpRequest().run(context(config), step_args(raw, {"target": hostile}))
        except ActionFailed as refused:
            assert "not under an allowed base URL" in refused.user_message
            assert len(httpserver.log) == before, f"{hostile!r} was refused before anything was sent"
            continue
        request, _ = httpserver.log[-1]
        raw_path = request.environ.get("RAW_URI") or request.environ["REQUEST_URI"]
        assert raw_path == "/hooks/" + urllib.parse.quote(hostile, safe=""), f"{hostile!r} became more than one path segment"


def test_a_url_outside_the_allow_list_is_refused_before_anything_is_sent(httpserver: HTTPServer) -> None:
    config = config_for("https://cdn.example.com/api/")

    with pytest.raises(ActionFailed) as refused:
        HttpRequest().run(context(config), step_args({"url": httpserver.url_for("/hooks/kick")}, {}))

    assert "is not under an allowed base URL" in refused.value.user_message
    assert "https://cdn.example.com/api/" in refused.value.user_message
    assert httpserver.log == []


def test_validate_refuses_a_runbook_url_outside_the_allowed_bases() -> None:
    config = config_for("https://cdn.example.com/api/")

    assert HttpRequest.check_step({"url": "https://cdn.example.com/api/purge/{service}"}, config) == []
    assert HttpRequest.check_step({"url": "https://cdn.example.com/{path}"}, config) != []
    assert HttpRequest.check_step({"url": "{url}"}, config) != []
    assert HttpRequest.check_step({"url": "https://cdn.example.com.evil.test/api/x"}, config) != []


def test_a_failed_request_after_retries_names_the_cause(httpserver: HTTPServer) -> None:
    def never_answers(_request: Request) -> Response:
        return Response("down", status=502)

    httpserver.expect_request("/hooks/kick").respond_with_handler(never_answers)
    args = step_args({"url": httpserver.url_for("/hooks/kick"), "retries": 1}, {})

    with pytest.raises(ActionFailed) as failed:
        HttpRequest().run(context(config_for(httpserver.url_for("/hooks/"))), args)

    assert "HTTP 502" in failed.value.user_message
    assert len(httpserver.log) == 2, "one try and one retry"
