"""Requests refused for their Slack signature: one WARNING each, with the reason, never a flood."""

from __future__ import annotations

import logging

import pytest

from bot.slack.signatures import RefusalLog, signature_refusal_reason

NOW = 1_800_000_000


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "no Slack signature headers"),
        ({"x-slack-request-timestamp": str(NOW)}, "no Slack signature headers"),
        ({"x-slack-request-timestamp": "soon", "x-slack-signature": "v0=ab"}, "is not a number"),
        ({"x-slack-request-timestamp": str(NOW - 301), "x-slack-signature": "v0=ab"}, "stale timestamp, 301 s from this pod's clock"),
        ({"x-slack-request-timestamp": str(NOW + 900), "x-slack-signature": "v0=ab"}, "stale timestamp, -900 s"),
        ({"x-slack-request-timestamp": str(NOW - 10), "x-slack-signature": "v0=ab"}, "does not match SLACK_SIGNING_SECRET"),
    ],
)
def test_the_reason_names_what_the_troubleshooting_guide_checks(headers: dict[str, str], reason: str) -> None:
    assert reason in signature_refusal_reason(headers, NOW)


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "no Slack signature headers"),
        ({"x-slack-request-timestamp": "soon", "x-slack-signature": "v0=ab"}, "the X-Slack-Request-Timestamp header is not a number"),
        (
            {"x-slack-request-timestamp": str(NOW - 300), "x-slack-signature": "v0=ab"},
            "the signature does not match SLACK_SIGNING_SECRET (wrong or rotated secret, or a proxy changed the body)",
        ),
        (
            {"x-slack-request-timestamp": str(NOW - 301), "x-slack-signature": "v0=ab"},
            "stale timestamp, 301 s from this pod's clock (clock skew, or a replayed request)",
        ),
    ],
    ids=["no-headers", "timestamp-not-a-number", "exactly-five-minutes-old-is-not-stale", "stale"],
)
def test_the_reason_is_said_exactly_and_five_minutes_is_still_fresh(headers: dict[str, str], reason: str) -> None:
    assert signature_refusal_reason(headers, NOW) == reason


def test_each_refusal_is_one_warning_until_a_flood_is_summed_up(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    refusals = RefusalLog(per_minute=2, clock=lambda: now[0])

    with caplog.at_level(logging.WARNING, logger="bot.slack.signatures"):
        for _ in range(5):
            refusals.refused("no Slack signature headers", "10.0.0.7")
        now[0] = 61.0
        refusals.refused("stale timestamp, 400 s from this pod's clock", "10.0.0.7")

    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 3
    assert lines[0] == "refused a request to /slack/events (HTTP 401): no Slack signature headers; from 10.0.0.7"
    assert lines[2].endswith("from 10.0.0.7 (3 more since the previous line)")
    assert all(record.levelno == logging.WARNING for record in caplog.records)
