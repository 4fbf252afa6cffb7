"""The fake GitHub's Actions area over real HTTP: dispatch answers and runs that progress as GitHub's do."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fakes.github import FakeGitHub
from fakes.github.actions import workflows
from tests.integration.gitops_support import make_origin

TOKEN = "ghs_fake"


@pytest.fixture
def github(tmp_path: Path) -> Iterator[FakeGitHub]:
    origin = make_origin(tmp_path, {"README.md": "x\n"})
    with FakeGitHub(token=TOKEN) as fake:
        fake.add_repo("shop", "checkout", origin.bare)
        workflows(fake.state).add("shop/checkout", ".github/workflows/release.yml", inputs={"version": {"required": True}}, run_seconds=0.3)
        workflows(fake.state).add("shop/checkout", ".github/workflows/ci.yml", dispatchable=False)
        yield fake


def call(github: FakeGitHub, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(github.url + path, data=data, method=method, headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


DISPATCH = "/repos/shop/checkout/actions/workflows/release.yml/dispatches"


def test_dispatch_answers_as_github_documents(github: FakeGitHub) -> None:
    assert call(github, "POST", DISPATCH, {"ref": "main", "inputs": {"version": "1.0"}}) == (204, None)
    assert call(github, "POST", "/repos/shop/checkout/actions/workflows/nope.yml/dispatches", {"ref": "main"})[0] == 404
    assert (
        call(github, "POST", DISPATCH, {"ref": "no-such-branch", "inputs": {"version": "1"}})[1]["message"]
        == "No ref found for: no-such-branch"
    )
    assert call(github, "POST", DISPATCH, {"ref": "main"})[1]["message"] == "Required input 'version' not provided"
    ci = call(github, "POST", "/repos/shop/checkout/actions/workflows/ci.yml/dispatches", {"ref": "main"})
    assert ci == (
        422,
        {"message": "Workflow does not have 'workflow_dispatch' trigger", "documentation_url": "https://docs.github.com/rest"},
    )


def test_a_dispatched_run_goes_from_queued_through_in_progress_to_completed(github: FakeGitHub) -> None:
    call(github, "POST", DISPATCH, {"ref": "main", "inputs": {"version": "1.0"}})
    _, listed = call(github, "GET", "/repos/shop/checkout/actions/workflows/release.yml/runs?event=workflow_dispatch&branch=main")
    [run] = listed["workflow_runs"]
    seen = [run["status"]]
    deadline = time.monotonic() + 10
    while seen[-1] != "completed":
        assert time.monotonic() < deadline
        status = call(github, "GET", f"/repos/shop/checkout/actions/runs/{run['id']}")[1]["status"]
        if status != seen[-1]:
            seen.append(status)
        time.sleep(0.02)

    assert seen == ["queued", "in_progress", "completed"]
    finished = call(github, "GET", f"/repos/shop/checkout/actions/runs/{run['id']}")[1]
    assert finished["conclusion"] == "success" and finished["html_url"].endswith(f"/shop/checkout/actions/runs/{run['id']}")
    assert call(github, "POST", f"/repos/shop/checkout/actions/runs/{run['id']}/cancel")[0] == 409
    assert call(github, "GET", "/repos/shop/checkout/actions/workflows/release.yml/runs?branch=other")[1]["total_count"] == 0
