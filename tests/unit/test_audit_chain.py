"""The chain's pure functions pinned to exact values: a change to any of them breaks every stored chain.

A hash over a different text (keys in another order, escaped non-ASCII, a local time) or a key id
computed differently would make every existing row, head and anchor stop verifying, so the exact
outputs are fixed here, not just their shape.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from bot.audit.chain import canonical_json, chain_hash, format_time, key_id


@pytest.fixture
def local_time_is_new_york(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local time zone far from UTC (a server's TZ must not leak into the chain)."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_canonical_json_sorts_keys_keeps_unicode_and_writes_times_as_text() -> None:
    value = {"b": 1, "a": "café", "t": datetime(2026, 11, 25, 12, 0, tzinfo=UTC)}
    assert canonical_json(value) == '{"a":"café","b":1,"t":"2026-11-25 12:00:00+00:00"}'


def test_the_hash_of_a_row_is_fixed() -> None:
    assert chain_hash([1, "café"], "0" * 64) == "527bc9e3bfe1d52e16b193a9e4f67e69dd5181dfc7012804b927fd12f330f802"


def test_times_are_utc_whatever_the_servers_time_zone(local_time_is_new_york: None) -> None:
    berlin = datetime(2026, 11, 25, 13, 0, 0, 123456, tzinfo=ZoneInfo("Europe/Berlin"))
    assert format_time(berlin) == "2026-11-25T12:00:00.123456Z"


def test_a_keys_public_id_is_fixed() -> None:
    assert key_id(b"k" * 40) == "1b5f8ed59ea3f614"
