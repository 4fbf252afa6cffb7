"""Fixtures shared by the integration tests that talk to the fake Slack Web API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fakes.slack import FakeSlackApi
from tests.integration.slack_support import assert_every_blocks_payload_valid, fake_slack


@pytest.fixture
def slack() -> Iterator[FakeSlackApi]:
    """The fake Slack with the test workspace; afterwards, every message opsbot sent was valid Block Kit and the fake never failed."""
    with fake_slack() as fake:
        yield fake
        assert_every_blocks_payload_valid(fake)
        assert fake.server_errors == []
