"""A big list page is parsed without the garbage collector walking it (bot/backends/kubernetes/bulk_json.py)."""

from __future__ import annotations

import gc
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from bot.backends.kubernetes.bulk_json import loads_paused

PAGE = json.dumps({
    "kind": "PodList",
    "metadata": {"resourceVersion": "7"},
    "items": [
        {
            "metadata": {"name": f"web-{index}", "labels": {"app": "web"}},
            "status": {"containerStatuses": [{"name": "web", "restartCount": 0}]},
        }
        for index in range(20_000)
    ],
}).encode()  # fmt: skip


@pytest.fixture
def collections() -> Iterator[list[int]]:
    """The generation of every garbage collection that starts while the test runs."""
    seen: list[int] = []

    def record(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            seen.append(int(info["generation"]))

    gc.callbacks.append(record)
    try:
        yield seen
    finally:
        gc.callbacks.remove(record)


def test_a_big_page_parses_to_what_json_loads_gives() -> None:
    assert loads_paused(PAGE) == json.loads(PAGE)


def test_the_parse_sets_off_no_collection_where_a_plain_parse_sets_off_many(collections: list[int]) -> None:
    json.loads(PAGE)
    plain = len(collections)
    collections.clear()

    loads_paused(PAGE)

    assert plain > 0
    assert collections == []


def test_the_collector_runs_again_after_the_parse_even_when_the_parse_fails() -> None:
    assert gc.isenabled()
    loads_paused(PAGE)
    assert gc.isenabled()
    with pytest.raises(json.JSONDecodeError):
        loads_paused(b'{"items": [')
    assert gc.isenabled()


def test_a_collector_paused_by_someone_else_stays_paused() -> None:
    gc.disable()
    try:
        loads_paused(PAGE)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_parses_in_several_threads_leave_the_collector_running() -> None:
    results: list[int] = []

    def parse() -> None:
        for _ in range(3):
            results.append(len(loads_paused(PAGE)["items"]))

    threads = [threading.Thread(target=parse) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results == [20_000] * 12
    assert gc.isenabled()
